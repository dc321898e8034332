// The one way an error is shown in a form or panel.
import type { ReactNode } from 'react';

/** An error said plainly, announced to screen readers; nothing when there is none. */
export function FormError({ error }: { error: string | null | undefined }): ReactNode {
  return error ? (
    <p role="alert" className="form-error">
      {error}
    </p>
  ) : null;
}
