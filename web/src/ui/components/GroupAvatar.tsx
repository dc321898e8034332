// GroupAvatar: a group's picture when an admin set one, else the letter avatar.
import { useEffect, useState } from 'react';
import { pictureType } from '../../client/group-picture';
import { Avatar } from './Avatar';

interface Props {
  name: string;
  picture: Uint8Array | undefined;
  size?: 'sm' | 'md' | 'lg';
  /** Alternative text when the picture is the content (the members panel); decorative elsewhere. */
  alt?: string;
}

/** An object URL for checked picture bytes, revoked when they change or the component goes. */
export function usePictureUrl(picture: Uint8Array | undefined): string | null {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    const type = picture ? pictureType(picture) : null;
    if (!picture || !type) {
      setUrl(null);
      return;
    }
    const made = URL.createObjectURL(new Blob([picture.slice()], { type }));
    setUrl(made);
    return () => URL.revokeObjectURL(made);
  }, [picture]);
  return url;
}

export function GroupAvatar({ name, picture, size = 'md', alt = '' }: Props) {
  const url = usePictureUrl(picture);
  if (!url) return <Avatar name={name} size={size === 'lg' ? 'md' : size} group />;
  return (
    <img className={`avatar avatar-${size} avatar-picture`} src={url} alt={alt} aria-hidden={alt ? undefined : true} />
  );
}
