// ProgressNote: the indeterminate progress bar and sentence shown while keys are derived and the account set up.

export type Step = 'deriving' | 'registering' | 'restoring' | 'connecting';

const TEXT: Record<Step, string> = {
  deriving: 'Deriving your keys from the password…',
  registering: 'Creating your keys and registering…',
  restoring: 'Restoring your keys…',
  connecting: 'Connecting…',
};

export function ProgressNote({ step }: { step: Step }) {
  return (
    <div className="progress-note" role="status">
      <progress aria-label={TEXT[step]} />
      <span>{TEXT[step]}</span>
    </div>
  );
}
