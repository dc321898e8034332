// The build step that adds Subresource Integrity (web/build/subresource-integrity.ts) and the client-version helpers
// Settings and verify-client share (web/src/client/client-version.ts), on small pages whose bytes we know.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  addIntegrity,
  assertNoInlineCode,
  injectWorkerIntegrity,
  integrityOf,
  KDF_WORKER_PLACEHOLDER,
} from '../../build/subresource-integrity';
import {
  bindingTagsOf,
  checkManifest,
  clientVersionOf,
  integritySetText,
  sha256HexOfIntegrity,
} from '../../src/client/client-version';

const files: Record<string, Uint8Array> = {
  'assets/index-a.js': new TextEncoder().encode('import("./boot-b.js")'),
  'assets/index-c.css': new TextEncoder().encode('body{}'),
  'assets/boot-b.js': new TextEncoder().encode('export const boot = 1'),
};
const read = (path: string) => {
  const bytes = files[path];
  if (!bytes) throw new Error(`no ${path}`);
  return bytes;
};
const PAGE = `<!doctype html>
<html>
  <head>
    <link rel="icon" href="/favicon.svg" />
    <script type="module" crossorigin src="/assets/index-a.js"></script>
    <link rel="stylesheet" crossorigin href="/assets/index-c.css">
  </head>
</html>
`;

describe('adding Subresource Integrity to the built page', () => {
  it('binds every script and stylesheet to the SHA-256 of its bytes and preloads each lazy chunk with its hash', () => {
    const html = addIntegrity(PAGE, ['assets/index-a.js', 'assets/boot-b.js'], read);
    const sri = (path: string) => `sha256-${createHash('sha256').update(read(path)).digest('base64')}`;
    expect(html).toContain(`src="/assets/index-a.js" integrity="${sri('assets/index-a.js')}"></script>`);
    expect(html).toContain(`href="/assets/index-c.css" integrity="${sri('assets/index-c.css')}">`);
    expect(html).toContain(
      `    <link rel="modulepreload" crossorigin href="/assets/boot-b.js" integrity="${sri('assets/boot-b.js')}">\n  </head>`,
    );
    expect(html).toContain('<link rel="icon" href="/favicon.svg" />'); // not a script or stylesheet: untouched
    expect(addIntegrity(PAGE, ['assets/boot-b.js', 'assets/index-a.js'], read)).toBe(html); // order-independent
    expect(bindingTagsOf(html).every((t) => t.integrity === integrityOf(read(t.path)))).toBe(true);
  });

  it('refuses an inline script, a script from another origin, and a tag that already names a hash', () => {
    const inline = PAGE.replace('</head>', '<script>alert(1)</script></head>');
    expect(() => addIntegrity(inline, [], read)).toThrow(/inline script/);
    const remote = PAGE.replace('/assets/index-a.js', 'https://cdn.example/x.js');
    expect(() => addIntegrity(remote, [], read)).toThrow(/from elsewhere/);
    const protocolRelative = PAGE.replace('/assets/index-a.js', '//cdn.example/x.js');
    expect(() => addIntegrity(protocolRelative, [], read)).toThrow(/from elsewhere/);
    expect(() => addIntegrity(addIntegrity(PAGE, [], read), [], read)).toThrow(/already set/);
  });
});

describe('the inline-code check of the built page', () => {
  it('passes the page as Vite emits it and refuses inline style, event handlers and javascript: URLs', () => {
    expect(() => assertNoInlineCode(PAGE)).not.toThrow();
    for (const bad of [
      '<style>body{color:red}</style>',
      '<div style="color:red"></div>',
      '<body onload="go()">',
      '<a href="javascript:go()">x</a>',
    ]) {
      expect(() => assertNoInlineCode(PAGE.replace('</head>', `${bad}</head>`)), bad).toThrow(/inline code/);
    }
  });
});

describe('the client version', () => {
  const entries = [
    { path: 'assets/index-a.js', integrity: integrityOf(read('assets/index-a.js')) },
    { path: 'assets/boot-b.js', integrity: integrityOf(read('assets/boot-b.js')) },
  ];

  it('is the SHA-256 of the sorted "path integrity" lines, whatever the order of the tags', async () => {
    const text = integritySetText(entries);
    expect(text).toBe(`assets/boot-b.js ${entries[1]!.integrity}\nassets/index-a.js ${entries[0]!.integrity}\n`);
    const expected = createHash('sha256').update(text).digest('hex');
    expect(await clientVersionOf(entries)).toBe(expected);
    expect(await clientVersionOf([...entries].reverse())).toBe(expected);
    await expect(clientVersionOf([])).rejects.toThrow(/no script/);
  });

  it('compares the loaded integrity values with a release manifest, naming the files that differ', async () => {
    const hex = (path: string) => createHash('sha256').update(read(path)).digest('hex');
    expect(sha256HexOfIntegrity(entries[0]!.integrity)).toBe(hex('assets/index-a.js'));
    expect(sha256HexOfIntegrity('sha384-abc')).toBeNull();
    const doc = (files: Record<string, string>) =>
      new TextEncoder().encode(
        JSON.stringify({
          manifest: Buffer.from(JSON.stringify({ version: 1, files, signedAt: 'x' })).toString('base64url'),
          signature: 'unchecked here',
          keyId: 'k1',
        }),
      );
    const good = doc({ 'assets/index-a.js': hex('assets/index-a.js'), 'assets/boot-b.js': hex('assets/boot-b.js') });
    expect(await checkManifest(entries, good)).toEqual({
      kind: 'matches',
      keyId: 'k1',
      manifestHash: createHash('sha256').update(good).digest('hex'),
    });
    const other = doc({ 'assets/index-a.js': hex('assets/index-a.js'), 'assets/boot-b.js': '00'.repeat(32) });
    expect(await checkManifest(entries, other)).toMatchObject({ kind: 'differs', files: ['assets/boot-b.js'] });
    const missing = doc({ 'assets/index-a.js': hex('assets/index-a.js') });
    expect(await checkManifest(entries, missing)).toMatchObject({ kind: 'differs', files: ['assets/boot-b.js'] });
  });
});

describe("the key-derivation worker's integrity, written into the chunk that fetches it", () => {
  const worker = new TextEncoder().encode('self.onmessage = () => {}');
  const readWorker = (path: string) => {
    if (path !== 'assets/kdf.worker-x1.js') throw new Error(`no ${path}`);
    return worker;
  };
  const chunks = new Map([
    ['assets/boot-b.js', `const i = "${KDF_WORKER_PLACEHOLDER}"; fetch(u, { integrity: i })`],
    ['assets/index-a.js', 'import("./boot-b.js")'],
  ]);

  it('replaces the placeholder with the SHA-256 integrity of the worker file, in that chunk only', () => {
    const changed = injectWorkerIntegrity(chunks, ['assets/kdf.worker-x1.js', 'assets/boot-b.js'], readWorker);
    expect([...changed.keys()]).toEqual(['assets/boot-b.js']);
    expect(changed.get('assets/boot-b.js')).toBe(`const i = "${integrityOf(worker)}"; fetch(u, { integrity: i })`);
  });

  it('refuses to build when no chunk holds the placeholder or there is not exactly one worker', () => {
    const without = new Map([['assets/index-a.js', 'import("./boot-b.js")']]);
    expect(() => injectWorkerIntegrity(without, ['assets/kdf.worker-x1.js'], readWorker)).toThrow(/in 0 chunks/);
    expect(() => injectWorkerIntegrity(chunks, [], readWorker)).toThrow(/found 0/);
    expect(() =>
      injectWorkerIntegrity(chunks, ['assets/kdf.worker-x1.js', 'assets/kdf.worker-x2.js'], readWorker),
    ).toThrow(/found 2/);
  });
});
