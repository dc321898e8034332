// The profiles this device holds (snapshot.profiles), for any component that shows a person: Avatar shows the
// picture, DisplayName the name. Object URLs for pictures are made once per picture and revoked when replaced.
import { createContext, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { pictureType } from '../../client/profile-picture';
import type { ProfileView } from '../../client/types';

interface ProfilesValue {
  profiles: Readonly<Record<string, ProfileView>>;
  /** userId → object URL of the picture (only for pictures of a known image type). */
  pictureUrls: ReadonlyMap<string, string>;
}

const ProfilesContext = createContext<ProfilesValue>({ profiles: {}, pictureUrls: new Map() });

export function ProfilesProvider({
  profiles,
  children,
}: {
  profiles: Readonly<Record<string, ProfileView>>;
  children: ReactNode;
}) {
  // One URL per picture byte array: kept while the same bytes are in the snapshot, revoked once replaced or gone
  // (and all of them when the provider goes away).
  const cache = useRef(new Map<Uint8Array, string>());
  const [pictureUrls, setPictureUrls] = useState<ReadonlyMap<string, string>>(new Map());
  useEffect(() => {
    const held = cache.current;
    const urls = new Map<string, string>();
    const live = new Set<Uint8Array>();
    for (const [userId, p] of Object.entries(profiles)) {
      const type = p.picture ? pictureType(p.picture) : null;
      if (!p.picture || !type) continue;
      let url = held.get(p.picture);
      if (!url) {
        url = URL.createObjectURL(new Blob([p.picture as BlobPart], { type }));
        held.set(p.picture, url);
      }
      live.add(p.picture);
      urls.set(userId, url);
    }
    for (const [bytes, url] of held) {
      if (!live.has(bytes)) {
        URL.revokeObjectURL(url);
        held.delete(bytes);
      }
    }
    setPictureUrls(urls);
  }, [profiles]);
  useEffect(() => {
    const held = cache.current;
    return () => {
      for (const url of held.values()) URL.revokeObjectURL(url);
      held.clear();
    };
  }, []);
  const value = useMemo(() => ({ profiles, pictureUrls }), [profiles, pictureUrls]);
  return <ProfilesContext.Provider value={value}>{children}</ProfilesContext.Provider>;
}

/** The display name of `userId` ('' when none), and the URL of their picture (null when none). */
export function useProfile(userId: string | undefined): { name: string; pictureUrl: string | null } {
  const { profiles, pictureUrls } = useContext(ProfilesContext);
  if (!userId) return { name: '', pictureUrl: null };
  return { name: profiles[userId]?.name ?? '', pictureUrl: pictureUrls.get(userId) ?? null };
}

/** A person's display name with their username beside it, or the username alone when they set no name. */
export function DisplayName({ userId, username }: { userId: string | undefined; username: string }) {
  const { name } = useProfile(userId);
  if (!name) return <>{username}</>;
  return (
    <>
      {name} <span className="username-aside">@{username}</span>
    </>
  );
}
