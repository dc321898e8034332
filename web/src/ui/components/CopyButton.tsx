// CopyButton: copies a value (a hash, a key) to the clipboard and says whether it worked, in a live status line.
import { useState } from 'react';

export function CopyButton({ value, label, what }: { value: string; label: string; what: string }) {
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null);

  async function copy() {
    try {
      await navigator.clipboard.writeText(value);
      setCopied('yes');
    } catch {
      setCopied('failed');
    }
  }

  return (
    <div className="client-version-actions">
      <button type="button" className="btn" onClick={() => void copy()}>
        {label}
      </button>
      <span role="status" className="muted">
        {copied === 'yes' ? 'Copied' : copied === 'failed' ? `Copying failed: select the ${what} instead` : ''}
      </span>
    </div>
  );
}
