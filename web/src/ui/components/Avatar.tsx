// Avatar: the person's profile picture when this device holds one (by `userId`), else the first letter of the name
// on a colour picked from the name; an optional online dot.
import { hueClass, initial } from '../format';
import { useProfile } from '../profile/profiles-context';

interface Props {
  name: string;
  /** Whose profile picture to show, when there is one. */
  userId?: string;
  online?: boolean;
  size?: 'sm' | 'md' | 'lg';
  group?: boolean;
}

export function Avatar({ name, userId, online, size = 'md', group = false }: Props) {
  const { pictureUrl } = useProfile(group ? undefined : userId);
  return (
    <span
      className={`avatar avatar-${size} ${hueClass(name)}${group ? ' avatar-group' : ''}${pictureUrl ? ' avatar-picture' : ''}`}
      aria-hidden="true"
    >
      {pictureUrl ? <img src={pictureUrl} alt="" draggable={false} /> : initial(name)}
      {online ? <span className="online-dot" /> : null}
    </span>
  );
}
