// NewGroupPanel: name a group and pick its members; the name is sent to them encrypted, the relay sees only ids.
import { useState, type FormEvent } from 'react';
import type { ChatEngineApi, Person } from '../../client/types';
import { PeoplePicker } from './PeoplePicker';
import { FormError } from './FormError';
import { PanelHeader } from './PanelHeader';

interface Props {
  engine: ChatEngineApi;
  me: string;
  onCreated: (conv: string) => void;
  onClose: () => void;
}

export function NewGroupPanel({ engine, me, onCreated, onClose }: Props) {
  const [name, setName] = useState('');
  const [people, setPeople] = useState<Person[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onCreated(await engine.createGroup(name, people));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  }

  return (
    <section className="settings" aria-labelledby="new-group-title">
      <PanelHeader titleId="new-group-title" title="New group" closeLabel="Cancel new group" onClose={onClose} />
      <form className="settings-body" onSubmit={(e) => void submit(e)}>
        <div className="card">
          <label className="field">
            <span>Group name</span>
            <input value={name} maxLength={100} onChange={(e) => setName(e.target.value)} required autoFocus />
          </label>
          <p className="hint">The name and member list are end-to-end encrypted; the relay sees only member ids.</p>
        </div>
        <fieldset className="card">
          <legend>Members</legend>
          <PeoplePicker engine={engine} exclude={[me]} picked={people} onChange={setPeople} />
        </fieldset>
        <FormError error={error} />
        <button type="submit" className="btn btn-primary" disabled={busy || people.length < 2 || !name.trim()}>
          Create group
        </button>
      </form>
    </section>
  );
}
