// GroupMembersPanel: who is in a group and who is admin; admins rename the group, set its picture, add and remove
// members and make others admin; anyone may leave. Removing and leaving ask for confirmation first.
import { useEffect, useRef, useState, type FormEvent } from 'react';
import type { ChatEngineApi, Conversation, Person } from '../../client/types';
import { MAX_GROUP_PICTURE_BYTES } from '../../client/group-picture';
import { squarePicture } from '../profile/square-picture';
import '../styles/groups.css';
import { Avatar } from './Avatar';
import { DisplayName } from '../profile/profiles-context';
import { GroupAvatar } from './GroupAvatar';
import { PeoplePicker } from './PeoplePicker';
import { FormError } from './FormError';
import { PanelHeader } from './PanelHeader';

interface Props {
  engine: ChatEngineApi;
  me: string;
  conversation: Conversation;
  onClose: () => void;
}

type Confirming = { kind: 'remove'; member: Person } | { kind: 'leave' } | null;

/** An inline confirmation: says what will happen; the safe button has focus. */
function Confirm({
  text,
  yes,
  no,
  busy,
  onYes,
  onNo,
}: {
  text: string;
  yes: string;
  no: string;
  busy: boolean;
  onYes: () => void;
  onNo: () => void;
}) {
  const safe = useRef<HTMLButtonElement>(null);
  useEffect(() => safe.current?.focus(), []);
  return (
    <div className="confirm" role="group" aria-label={yes}>
      <p>{text}</p>
      <div className="row">
        <button type="button" className="btn btn-danger" disabled={busy} onClick={onYes}>
          {yes}
        </button>
        <button type="button" className="btn" ref={safe} onClick={onNo}>
          {no}
        </button>
      </div>
    </div>
  );
}

export function GroupMembersPanel({ engine, me, conversation, onClose }: Props) {
  const group = conversation.group!;
  const admin = group.admins.includes(me) && !group.left;
  const [adding, setAdding] = useState<Person[]>([]);
  const [name, setName] = useState(group.name);
  const [confirming, setConfirming] = useState<Confirming>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Someone else renamed the group: the field follows.
  useEffect(() => setName(group.name), [group.name]);

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

  function rename(e: FormEvent) {
    e.preventDefault();
    void run(() => engine.renameGroup(conversation.conv, name));
  }

  async function choosePicture(file: File | undefined) {
    if (!file) return;
    await run(async () =>
      engine.setGroupPicture(conversation.conv, await squarePicture(file, MAX_GROUP_PICTURE_BYTES)),
    );
  }

  const otherAdmins = group.admins.filter((id) => id !== me);
  const successor = group.members.find((m) => m.userId !== me);
  const leaveText =
    `Leave “${group.name}”? You will stop getting its messages, and only an admin can add you back.` +
    (admin && otherAdmins.length === 0 && successor ? ` ${successor.username} will become an admin.` : '');

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
          <legend>Group</legend>
          <div className="group-picture-row">
            <GroupAvatar
              name={group.name}
              picture={group.picture}
              size="lg"
              alt={group.picture ? 'Group picture' : ''}
            />
            {admin ? (
              <div className="member-actions">
                <label className="field file-field">
                  <span>Group picture</span>
                  <input
                    type="file"
                    accept="image/*"
                    disabled={busy}
                    onChange={(e) => {
                      const input = e.currentTarget;
                      void choosePicture(input.files?.[0]).finally(() => (input.value = ''));
                    }}
                  />
                </label>
                {group.picture ? (
                  <button
                    type="button"
                    className="btn btn-ghost"
                    disabled={busy}
                    onClick={() => void run(() => engine.setGroupPicture(conversation.conv, null))}
                  >
                    Remove group picture
                  </button>
                ) : null}
              </div>
            ) : null}
          </div>
          {admin ? (
            <form className="row group-rename" onSubmit={rename}>
              <label className="field">
                <span>Group name</span>
                <input type="text" value={name} maxLength={100} required onChange={(e) => setName(e.target.value)} />
              </label>
              <button
                type="submit"
                className="btn btn-primary"
                disabled={busy || name.trim().length === 0 || name.trim() === group.name}
              >
                Rename group
              </button>
            </form>
          ) : (
            <p className="muted">Only admins can change the name and picture.</p>
          )}
        </fieldset>
        <fieldset className="card">
          <legend>{group.members.length} members</legend>
          <ul className="member-list">
            {group.members.map((m) => {
              const isAdmin = group.admins.includes(m.userId);
              const self = m.userId === me;
              return (
                <li key={m.userId} className="member">
                  <Avatar name={m.username} userId={m.userId} size="sm" />
                  <span className="member-name">
                    <DisplayName userId={m.userId} username={m.username} />
                    {self ? ' (you)' : null}
                    {isAdmin ? <span className="tag">Admin</span> : null}
                  </span>
                  {admin ? (
                    <span className="member-actions">
                      {!isAdmin ? (
                        <button
                          type="button"
                          className="btn btn-ghost"
                          disabled={busy}
                          onClick={() => void run(() => engine.setGroupAdmin(conversation.conv, m.userId, true))}
                        >
                          Make admin
                        </button>
                      ) : !self || otherAdmins.length > 0 ? (
                        <button
                          type="button"
                          className="btn btn-ghost"
                          disabled={busy}
                          onClick={() => void run(() => engine.setGroupAdmin(conversation.conv, m.userId, false))}
                        >
                          Remove admin
                        </button>
                      ) : null}
                      {!self ? (
                        <button
                          type="button"
                          className="btn btn-ghost"
                          disabled={busy}
                          onClick={() => setConfirming({ kind: 'remove', member: m })}
                        >
                          Remove member
                        </button>
                      ) : null}
                    </span>
                  ) : null}
                  {confirming?.kind === 'remove' && confirming.member.userId === m.userId ? (
                    <Confirm
                      text={`Remove ${m.username} from “${group.name}”? They will stop getting its messages.`}
                      yes={`Yes, remove ${m.username}`}
                      no={`Keep ${m.username}`}
                      busy={busy}
                      onYes={() =>
                        void run(async () => {
                          await engine.removeGroupMember(conversation.conv, m.userId);
                          setConfirming(null);
                        })
                      }
                      onNo={() => setConfirming(null)}
                    />
                  ) : null}
                </li>
              );
            })}
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
        ) : confirming?.kind === 'leave' ? (
          <Confirm
            text={leaveText}
            yes="Yes, leave the group"
            no="Stay in the group"
            busy={busy}
            onYes={() =>
              void run(async () => {
                await engine.leaveGroup(conversation.conv);
                setConfirming(null);
              })
            }
            onNo={() => setConfirming(null)}
          />
        ) : (
          <button
            type="button"
            className="btn btn-danger"
            disabled={busy}
            onClick={() => setConfirming({ kind: 'leave' })}
          >
            Leave group
          </button>
        )}
      </div>
    </section>
  );
}
