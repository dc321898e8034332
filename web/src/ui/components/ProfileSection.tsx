// ProfileSection (Settings): display name and profile picture, end-to-end encrypted with the profile key; the relay
// stores only ciphertext, and contacts get the key over their sessions with us.
import { useEffect, useId, useState } from 'react';
import { pictureType } from '../../client/profile-picture';
import type { ChatEngineApi } from '../../client/types';
import { squarePicture } from '../profile/square-picture';
import { Avatar } from './Avatar';
import { FormError } from './FormError';

interface Props {
  engine: ChatEngineApi;
}

export function ProfileSection({ engine }: Props) {
  const snapshot = engine.getSnapshot();
  const me = snapshot.me;
  const saved = snapshot.profiles[me.userId];
  const [name, setName] = useState(saved?.name ?? '');
  /** The picture to save: unchanged (undefined), a new square, or removed (null). */
  const [picture, setPicture] = useState<Uint8Array | null | undefined>(undefined);
  const [previewUrl, setPreviewUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState('');
  const [busy, setBusy] = useState(false);
  const hintId = useId();

  // The preview shows the new square when one was chosen; the saved picture otherwise (through Avatar).
  useEffect(() => {
    if (!picture) {
      setPreviewUrl(null);
      return;
    }
    const url = URL.createObjectURL(new Blob([picture as BlobPart], { type: pictureType(picture) ?? 'image/jpeg' }));
    setPreviewUrl(url);
    return () => URL.revokeObjectURL(url);
  }, [picture]);

  async function choose(file: File | undefined) {
    setError(null);
    setStatus('');
    if (!file) return;
    try {
      setPicture(await squarePicture(file));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }

  async function save() {
    setBusy(true);
    setError(null);
    setStatus('');
    try {
      const current = engine.getSnapshot().profiles[me.userId]?.picture ?? null;
      await engine.saveProfile(name, picture === undefined ? current : picture);
      setPicture(undefined);
      setStatus('Profile saved. Your contacts will see it.');
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  const hasPicture = picture === undefined ? Boolean(saved?.picture) : picture !== null;
  return (
    <fieldset className="card profile-card">
      <legend>Profile</legend>
      <div className="profile-row">
        <div className="profile-preview" role="img" aria-label="Preview of your profile picture">
          {previewUrl ? (
            <img src={previewUrl} alt="" className="avatar avatar-lg avatar-picture" />
          ) : picture === null ? (
            <Avatar name={name || me.username} size="lg" />
          ) : (
            <Avatar name={name || me.username} userId={me.userId} size="lg" />
          )}
        </div>
        <div className="profile-fields">
          <label className="field">
            <span>Display name</span>
            <input
              value={name}
              maxLength={64}
              placeholder={me.username}
              aria-describedby={hintId}
              onChange={(e) => setName(e.target.value)}
            />
          </label>
          <label className="field">
            <span>Profile picture</span>
            <input
              type="file"
              accept="image/png,image/jpeg,image/webp,image/gif"
              onChange={(e) => void choose(e.target.files?.[0])}
            />
          </label>
          {hasPicture ? (
            <button type="button" className="btn btn-ghost" onClick={() => setPicture(null)}>
              Remove picture
            </button>
          ) : null}
        </div>
      </div>
      <p className="hint" id={hintId}>
        Your name and picture are end-to-end encrypted: only people you message can see them. Pictures are cropped to a
        square.
      </p>
      <FormError error={error} />
      <p className="hint" role="status">
        {status}
      </p>
      <button type="button" className="btn btn-primary" disabled={busy} onClick={() => void save()}>
        Save profile
      </button>
    </fieldset>
  );
}
