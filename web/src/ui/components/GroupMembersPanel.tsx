// GroupMembersPanel: who is in a group; admins add and remove members; anyone may leave.
import { useState } from 'react';
import type { ChatEngineApi, Conversation, Person } from '../../client/types';
import { Avatar } from './Avatar';
import { DisplayName } from '../profile/profiles-context';
import { PeoplePicker } from './PeoplePicker';
import { FormError } from './FormError';
import { PanelHeader } from './PanelHeader';

interface Props {
  engine: ChatEngineApi;
  me: string;
  conversation: Conversation;
  onClose: () => void;
}

export function GroupMembersPanel({ engine, me, conversation, onClose }: Props) {
  const group = conversation.group!;
  const admin = group.admins.includes(me) && !group.left;
  const [adding, setAdding] = useState<Person[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function run(action: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="settings" aria-labelledby="members-title">
      <PanelHeader
        titleId="members-title"
        title={`${group.name}: members`}
        closeLabel="Back to the conversation"
        onClose={onClose}
      />
      <div className="settings-body">
        <FormError error={error} />
        <fieldset className="card">
          <legend>{group.members.length} members</legend>
          <ul className="member-list">
            {group.members.map((m) => (
              <li key={m.userId} className="member">
                <Avatar name={m.username} userId={m.userId} size="sm" />
                <span className="member-name">
                  <DisplayName userId={m.userId} username={m.username} />
                  {m.userId === me ? ' (you)' : null}
                  {group.admins.includes(m.userId) ? <span className="tag">admin</span> : null}
                </span>
                {admin && m.userId !== me ? (
                  <button
                    type="button"
                    className="btn btn-ghost"
                    disabled={busy}
                    onClick={() => void run(() => engine.removeGroupMember(conversation.conv, m.userId))}
                  >
                    Remove {m.username}
                  </button>
                ) : null}
              </li>
            ))}
          </ul>
        </fieldset>
        {admin ? (
          <fieldset className="card">
            <legend>Add members</legend>
            <PeoplePicker
              engine={engine}
              exclude={group.members.map((m) => m.userId)}
              picked={adding}
              onChange={setAdding}
            />
            <button
              type="button"
              className="btn btn-primary"
              disabled={busy || adding.length === 0}
              onClick={() =>
                void run(async () => {
                  await engine.addGroupMembers(conversation.conv, adding);
                  setAdding([]);
                })
              }
            >
              Add to group
            </button>
          </fieldset>
        ) : null}
        {group.left ? (
          <p className="muted">You are no longer a member of this group.</p>
        ) : (
          <button
            type="button"
            className="btn btn-danger"
            disabled={busy}
            onClick={() => void run(() => engine.leaveGroup(conversation.conv))}
          >
            Leave group
          </button>
        )}
      </div>
    </section>
  );
}
