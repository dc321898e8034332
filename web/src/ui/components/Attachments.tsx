// Attachments in the UI (issue #15): the composer's pending files (Attach file, paste, drop; upload progress; Retry
// keeps them), and attachments in a message bubble — images inline (thumbnail, then the decrypted image; click for
// full size) and everything else as a card with a Save button. Object URLs are revoked when they are no longer shown.
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import { formatBytes, isInlineImage, sanitizeFileName } from '../../client/attachment-names';
import type { AttachmentsApi } from '../../client/attachments';
import type { Attachment } from '../../client/schemas';
import '../styles/attachments.css';

/** Images up to this size are downloaded and shown as soon as their message is on screen. */
const AUTO_DOWNLOAD_BYTES = 25 * 1024 * 1024;
/** Files one message may carry (the engine's MAX_ATTACHMENTS). */
const MAX_FILES = 10;

const AttachmentsContext = createContext<AttachmentsApi | null>(null);

export function AttachmentsProvider({ api, children }: { api: AttachmentsApi; children: ReactNode }) {
  return <AttachmentsContext.Provider value={api}>{children}</AttachmentsContext.Provider>;
}

// ── the composer's pending files ──────────────────────────────────────────────────────────────────────────

interface Pending {
  key: number;
  file: File;
  /** 0–1 while uploading; null before. */
  progress: number | null;
  /** Set once uploaded: a retry after a failure does not upload it again. */
  done?: Attachment;
}

export interface AttachmentDraft {
  files: readonly Pending[];
  error: string | null;
  busy: boolean;
  add(files: Iterable<File>): void;
  remove(key: number): void;
  /** Uploads every pending file not yet uploaded (in order); on failure keeps them all and rethrows. */
  uploadAll(): Promise<Attachment[]>;
  clear(): void;
}

let nextKey = 1;

export function useAttachmentDraft(api: AttachmentsApi): AttachmentDraft {
  const [files, setFiles] = useState<Pending[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const current = useRef(files);
  current.current = files;

  const update = useCallback((key: number, patch: Partial<Pending>) => {
    setFiles((list) => list.map((p) => (p.key === key ? { ...p, ...patch } : p)));
  }, []);

  return {
    files,
    error,
    busy,
    add(added) {
      const list = [...added].filter((f) => f.size > 0 || f.name);
      if (list.length === 0) return;
      setError(null);
      setFiles((old) =>
        [...old, ...list.map((file) => ({ key: nextKey++, file, progress: null }))].slice(0, MAX_FILES),
      );
    },
    remove(key) {
      setFiles((old) => old.filter((p) => p.key !== key));
    },
    async uploadAll() {
      const out: Attachment[] = [];
      setBusy(true);
      setError(null);
      try {
        for (const p of current.current) {
          if (p.done) {
            out.push(p.done);
            continue;
          }
          update(p.key, { progress: 0 });
          const att = await api.upload(p.file, (fraction) => update(p.key, { progress: fraction }), {
            name: p.file.name || 'pasted-image',
            type: p.file.type,
          });
          update(p.key, { progress: 1, done: att });
          p.done = att;
          out.push(att);
        }
        return out;
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        setError(`Upload failed: ${message}`);
        setFiles((list) => list.map((p) => (p.done ? p : { ...p, progress: null })));
        throw e;
      } finally {
        setBusy(false);
      }
    },
    clear() {
      setFiles([]);
      setError(null);
    },
  };
}

/** The paper-clip button and its hidden multi-file input. */
export function AttachButton({ draft, disabled }: { draft: AttachmentDraft; disabled?: boolean }) {
  const input = useRef<HTMLInputElement>(null);
  return (
    <>
      <button
        type="button"
        className="btn btn-ghost attach-button"
        aria-label="Attach file"
        title="Attach file"
        disabled={disabled || draft.busy}
        onClick={() => input.current?.click()}
      >
        <span className="icon icon-clip" aria-hidden="true" />
      </button>
      <input
        ref={input}
        type="file"
        multiple
        hidden
        tabIndex={-1}
        aria-hidden="true"
        onChange={(e) => {
          if (e.target.files) draft.add(e.target.files);
          e.target.value = '';
        }}
      />
    </>
  );
}

/** The files waiting to go with the next message, with their upload progress. */
export function PendingAttachments({ draft }: { draft: AttachmentDraft }) {
  if (draft.files.length === 0) return null;
  return (
    <ul className="pending-attachments" aria-label="Files to send">
      {draft.files.map((p) => {
        const name = sanitizeFileName(p.file.name || 'pasted-image');
        return (
          <li key={p.key} className="pending-attachment">
            <span className="icon icon-clip file-icon" aria-hidden="true" />
            <span className="pending-name" title={name}>
              {name}
            </span>
            <span className="pending-size muted">{formatBytes(p.file.size)}</span>
            {p.progress !== null ? (
              <progress
                className="attach-progress"
                aria-label={`Uploading ${name}`}
                aria-valuenow={Math.round(p.progress * 100)}
                aria-valuemin={0}
                aria-valuemax={100}
                role="progressbar"
                max={100}
                value={Math.round(p.progress * 100)}
              />
            ) : null}
            <button
              type="button"
              className="btn btn-ghost pending-remove"
              aria-label={`Remove ${name}`}
              disabled={draft.busy}
              onClick={() => draft.remove(p.key)}
            >
              ×
            </button>
          </li>
        );
      })}
    </ul>
  );
}

/** Files from a paste or a drop (images pasted from the clipboard come as files too). */
export function filesOf(data: DataTransfer | null): File[] {
  if (!data) return [];
  return [...data.files];
}

// ── attachments in a message ─────────────────────────────────────────────────────────────────────────────

export function MessageAttachments({ attachments }: { attachments: readonly Attachment[] }) {
  return (
    <div className="message-attachments">
      {attachments.map((a) =>
        isInlineImage(a.type) ? <InlineImage key={a.blobId} att={a} /> : <FileCard key={a.blobId} att={a} />,
      )}
    </div>
  );
}

/** An object URL for `blob` while the component is mounted (revoked on change and unmount). */
function useObjectUrl(blob: Blob | null): string | null {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!blob) return;
    const made = URL.createObjectURL(blob);
    setUrl(made);
    return () => {
      URL.revokeObjectURL(made);
      setUrl(null);
    };
  }, [blob]);
  return url;
}

function thumbnailBlob(att: Attachment): Blob | null {
  if (!att.thumbnail) return null;
  try {
    const b64 = att.thumbnail.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Blob([bytes], { type: 'image/jpeg' });
  } catch {
    return null;
  }
}

function InlineImage({ att }: { att: Attachment }) {
  const api = useContext(AttachmentsContext);
  const name = sanitizeFileName(att.name);
  const [thumb] = useState(() => thumbnailBlob(att));
  const [full, setFull] = useState<Blob | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [progress, setProgress] = useState(0);
  const [open, setOpen] = useState(false);
  const thumbUrl = useObjectUrl(thumb);
  const fullUrl = useObjectUrl(full);

  const load = useCallback(() => {
    if (!api) return;
    setError(null);
    api.download(att, setProgress).then(setFull, (e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  }, [api, att]);

  useEffect(() => {
    if (att.size <= AUTO_DOWNLOAD_BYTES) load();
  }, [att.size, load]);

  const src = fullUrl ?? thumbUrl;
  const ratio = att.width && att.height ? `${att.width} / ${att.height}` : undefined;
  return (
    <figure className="attachment-image">
      <button
        type="button"
        className="image-open"
        aria-label={`Open image ${name}`}
        disabled={!fullUrl}
        onClick={() => setOpen(true)}
        style={ratio ? { aspectRatio: ratio } : undefined}
      >
        {src ? <img src={src} alt={name} className={fullUrl ? '' : 'is-thumb'} /> : <span className="image-wait" />}
      </button>
      {!fullUrl && !error && att.size <= AUTO_DOWNLOAD_BYTES ? (
        <DownloadProgress name={name} progress={progress} />
      ) : null}
      {!fullUrl && !error && att.size > AUTO_DOWNLOAD_BYTES ? (
        <button type="button" className="btn btn-ghost" onClick={load}>
          Show image ({formatBytes(att.size)})
        </button>
      ) : null}
      {error ? (
        <p role="alert" className="attachment-error">
          {error}{' '}
          <button type="button" className="link" onClick={load}>
            Try again
          </button>
        </p>
      ) : null}
      {open && fullUrl ? <ImageDialog url={fullUrl} name={name} onClose={() => setOpen(false)} /> : null}
    </figure>
  );
}

/** The full-size image in a modal dialog: Escape or Close closes it, focus returns to the image. */
function ImageDialog({ url, name, onClose }: { url: string; name: string; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement as HTMLElement | null;
    dialog.showModal();
    return () => opener?.focus();
  }, []);
  return (
    <dialog
      ref={ref}
      className="image-dialog"
      aria-label={name}
      onClose={onClose}
      onClick={(e) => {
        if (e.target === ref.current) ref.current?.close();
      }}
    >
      <div className="image-dialog-head">
        <span className="image-dialog-name">{name}</span>
        <button type="button" className="btn btn-ghost" onClick={() => ref.current?.close()} autoFocus>
          Close
        </button>
      </div>
      <img src={url} alt={name} />
    </dialog>
  );
}

function FileCard({ att }: { att: Attachment }) {
  const api = useContext(AttachmentsContext);
  const name = sanitizeFileName(att.name);
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function save() {
    if (!api) return;
    setError(null);
    setProgress(0);
    try {
      const blob = await api.download(att, setProgress);
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      a.rel = 'noopener';
      document.body.append(a);
      a.click();
      a.remove();
      // The download has started from the URL; revoke it once the browser had a moment to take it.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setProgress(null);
    }
  }

  return (
    <div className="file-card">
      <span className="icon icon-file file-icon" aria-hidden="true" />
      <span className="file-text">
        <span className="file-name" title={name}>
          {name}
        </span>
        <span className="file-size">{formatBytes(att.size)}</span>
        {progress !== null ? <DownloadProgress name={name} progress={progress} /> : null}
        {error ? (
          <span role="alert" className="attachment-error">
            {error}
          </span>
        ) : null}
      </span>
      <button
        type="button"
        className="btn btn-ghost file-save"
        disabled={progress !== null}
        onClick={() => void save()}
      >
        Save
      </button>
    </div>
  );
}

/** A download's progress bar (0…1), named after the file. */
function DownloadProgress({ name, progress }: { name: string; progress: number }) {
  const percent = Math.round(progress * 100);
  return (
    <progress
      className="attach-progress"
      aria-label={`Downloading ${name}`}
      role="progressbar"
      aria-valuenow={percent}
      aria-valuemin={0}
      aria-valuemax={100}
      max={100}
      value={percent}
    />
  );
}
