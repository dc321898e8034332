// Avatar: the first letter of a name on a colour picked from the name; an optional online dot.
import { hueClass, initial } from '../format';

interface Props {
  name: string;
  online?: boolean;
  size?: 'sm' | 'md';
  group?: boolean;
}

export function Avatar({ name, online, size = 'md', group = false }: Props) {
  return (
    <span className={`avatar avatar-${size} ${hueClass(name)}${group ? ' avatar-group' : ''}`} aria-hidden="true">
      {initial(name)}
      {online ? <span className="online-dot" /> : null}
    </span>
  );
}
