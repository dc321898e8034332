// Structure-aware fuzzing support: take a valid request body, apply one mutation that the protocol must refuse
// (wrong type, huge or fractional number, deep nesting, __proto__ and other extra keys, invalid or off-by-one
// base64url, missing required field, array one past its limit), and digest the SQLite database to prove that
// nothing was written.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';

export type Path = (string | number)[];

/** How each string leaf of a body must look (paths joined with '.', array indexes as '*'). */
export type StringKind = 'b64' | 'b64any' | 'username' | 'opaque';

export interface BodySpec {
  /** Kind of each string leaf; base64url of a fixed size unless listed. */
  strings?: Record<string, StringKind>;
  /** Paths whose deletion leaves a valid body. */
  optional?: string[];
  /** Array paths and their maximum length. */
  arrays?: Record<string, number>;
}

export interface Mutation {
  pick: number;
  kind: 'replace' | 'extraKey' | 'deleteKey' | 'string' | 'number' | 'oversize' | 'deep';
  junk: unknown;
  key: string;
  variant: number;
}

const EVIL_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'then', 'x'];

/** Values of every JSON type (and a few limits): a replacement is only used when its type differs. */
export const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 2 ** 53, -(2 ** 63), 1e308, 0.5, '', ' ', '\u0000', 'null', '[]', {}, []),
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 5 })), { maxLength: 5 }),
  fc.dictionary(fc.constantFrom(...EVIL_KEYS), fc.integer(), { maxKeys: 3 }),
);

export const mutation: fc.Arbitrary<Mutation> = fc.record({
  pick: fc.nat(),
  kind: fc.constantFrom('replace', 'extraKey', 'deleteKey', 'string', 'number', 'oversize', 'deep'),
  junk,
  key: fc.oneof(fc.constantFrom(...EVIL_KEYS), fc.string({ minLength: 1, maxLength: 8 })),
  variant: fc.nat(),
});

const isBinary = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (isBinary(v)) return 'binary';
  return typeof v;
}

/** Every path in a value (the root included), depth first. */
export function pathsOf(value: unknown, prefix: Path = []): Path[] {
  const out: Path[] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...prefix, i])));
  else if (typeof value === 'object' && value !== null && !isBinary(value)) {
    for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...prefix, k]));
  }
  return out;
}

const specKey = (path: Path): string => path.map((p) => (typeof p === 'number' ? '*' : p)).join('.');

function clone(value: unknown): unknown {
  if (isBinary(value)) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(clone);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, clone(v));
    return out;
  }
  return value;
}

/** Sets an own, enumerable property even for "__proto__" (as JSON.parse would make it). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function get(root: unknown, path: Path): unknown {
  return path.reduce<unknown>((node, key) => (node as Record<string | number, unknown>)[key], root);
}

function nested(depth: number, variant: number): unknown {
  let v: unknown = variant % 2 ? 1 : 'x';
  for (let i = 0; i < depth; i++) v = variant % 3 ? [v] : { a: v };
  return v;
}

/** A base64url string that is not canonical or not base64url at all. */
function badBase64(s: string, variant: number): string {
  const t = s.length > 1 ? s : 'AA';
  switch (variant % 6) {
    case 0:
      return `${t}=`; // padding
    case 1:
      return `+${t.slice(1)}`; // standard alphabet
    case 2:
      return `/${t.slice(1)}`;
    case 3:
      return `${t.slice(0, -1)}.`; // not in any alphabet
    case 4:
      return `${t.slice(0, -1)}${t.length % 4 === 2 ? 'B' : 'Z'}`; // non-zero unused trailing bits (or 1 byte off)
    default:
      return `${t}A`; // one character too many
  }
}

/** The same field, one byte shorter or longer (still canonical base64url). */
function offByOne(s: string, variant: number): string {
  const bytes = Buffer.from(s, 'base64url').length;
  return Buffer.alloc(Math.max(0, bytes + (variant % 2 ? 1 : -1)), 7).toString('base64url');
}

function badString(kind: StringKind, s: string, variant: number): unknown {
  switch (kind) {
    case 'b64':
      return variant % 2 ? badBase64(s, variant >> 1) : offByOne(s, variant >> 1);
    case 'b64any':
      // any length is base64url here, so only the first five kinds of damage (not "one character more")
      return variant % 3 === 0 ? Buffer.alloc(64 * 1024 + 1, 1).toString('base64url') : badBase64(s, variant % 5);
    case 'username':
      return ['ab', 'a'.repeat(33), 'al ice', 'al-ice', 'ålice', 'al\u0000ice', '<script>', 'a/../b', 'ａｂｃ'][
        variant % 9
      ];
    case 'opaque':
      return variant % 2 ? '' : 'r'.repeat(257);
  }
}

const BAD_NUMBERS = [-1, 0.5, 2 ** 53, 1e308, -(2 ** 31), Number.MAX_SAFE_INTEGER + 2];

/**
 * Applies one mutation that makes `base` invalid under `spec`, or returns null when this mutation has nothing to
 * act on (the property then checks nothing for that run).
 */
export function mutate(base: unknown, spec: BodySpec, m: Mutation): unknown {
  const body = clone(base);
  const paths = pathsOf(body);
  const path = paths[m.pick % paths.length]!;
  const parentPath = path.slice(0, -1);
  const last = path.at(-1);
  const node = get(body, path);
  const replace = (value: unknown): unknown => {
    if (path.length === 0) return value;
    (get(body, parentPath) as Record<string | number, unknown>)[last!] = value;
    return body;
  };
  switch (m.kind) {
    case 'replace':
      return typeOf(m.junk) === typeOf(node) ? null : replace(m.junk);
    case 'deep':
      return replace(nested(200 + (m.variant % 2000), m.variant));
    case 'extraKey': {
      if (typeOf(node) !== 'object') return null;
      const target = node as Record<string, unknown>;
      if (Object.prototype.hasOwnProperty.call(target, m.key)) return null;
      setOwn(target, m.key, m.junk);
      return body;
    }
    case 'deleteKey': {
      if (path.length === 0 || typeof last !== 'string') return null;
      if ((spec.optional ?? []).includes(specKey(path))) return null;
      delete (get(body, parentPath) as Record<string, unknown>)[last];
      return body;
    }
    case 'string': {
      if (typeof node !== 'string') return null;
      return replace(badString(spec.strings?.[specKey(path)] ?? 'b64', node, m.variant));
    }
    case 'number':
      return typeof node === 'number' ? replace(BAD_NUMBERS[m.variant % BAD_NUMBERS.length]) : null;
    case 'oversize': {
      const max = spec.arrays?.[specKey(path)];
      if (max === undefined || !Array.isArray(node) || node.length === 0) return null;
      return replace(Array.from({ length: max + 1 }, () => clone(node[0])));
    }
  }
}

/** The string values (not keys) in a value: what an error message must never echo. */
export function stringLeaves(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(stringLeaves);
  if (typeof value === 'object' && value !== null && !isBinary(value))
    return Object.values(value).flatMap(stringLeaves);
  return [];
}

/**
 * A digest of every row of every table (users.last_seen blanked: connecting sockets move it), sqlite_sequence
 * included: a send stored and then acknowledged by an online device leaves its idempotency record and a higher
 * mailbox sequence, so "nothing stored" holds only if the digest did not move.
 */
export function databaseDigest(dataDir: string): string {
  const db = new Database(join(dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    const hash = createHash('sha256');
    const tables = db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND (name NOT LIKE 'sqlite_%' OR name = 'sqlite_sequence') ORDER BY name",
      )
      .all() as { name: string }[];
    for (const { name } of tables) {
      const rows = db.prepare(`SELECT * FROM "${name}"`).all() as Record<string, unknown>[];
      const lines = rows.map((row) =>
        // Activity times move on any connection (the attacker's too); they are not something a payload stored.
        JSON.stringify(row, (k, v: unknown) =>
          (name === 'users' && k === 'last_seen') || (name === 'devices' && k === 'last_active_at') ? null : v,
        ),
      );
      hash.update(`${name}:${lines.sort().join('\n')}\n`);
    }
    return hash.digest('hex');
  } finally {
    db.close();
  }
}

/**
 * The database digest once the given devices' mailboxes are empty: what earlier sends to these online, auto-acking
 * devices left behind is committed and acknowledged first, so that only what follows can move the digest.
 */
export async function settledDigest(
  relay: { dataDir: string; relay: { store: { countMailbox(deviceId: string): Promise<number> } } },
  deviceIds: string[],
): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const counts = await Promise.all(deviceIds.map((d) => relay.relay.store.countMailbox(d)));
    if (counts.every((n) => n === 0)) return databaseDigest(relay.dataDir);
    if (Date.now() > deadline) throw new Error('timed out waiting for the mailboxes to drain');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Rows anywhere in the database (idempotency records, mailbox entries) that carry this message id. */
export function rowsWithMessageId(dataDir: string, messageId: string): number {
  const db = new Database(join(dataDir, 'weconnect.db'), { readonly: true, fileMustExist: true });
  try {
    const count = (table: string) =>
      (db.prepare(`SELECT count(*) AS n FROM ${table} WHERE message_id = ?`).get(messageId) as { n: number }).n;
    return count('sent_ids') + count('mailbox');
  } finally {
    db.close();
  }
}
