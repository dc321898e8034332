// Formatting helpers for the message list and conversation list (local time, day separators).

export function dayKey(ts: number): string {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(ts: number, now = Date.now()): string {
  const today = new Date(now);
  today.setHours(0, 0, 0, 0);
  const day = new Date(ts);
  day.setHours(0, 0, 0, 0);
  const diff = Math.round((today.getTime() - day.getTime()) / 86_400_000);
  if (diff === 0) return 'Today';
  if (diff === 1) return 'Yesterday';
  const sameYear = day.getFullYear() === today.getFullYear();
  return day.toLocaleDateString(undefined, {
    weekday: diff < 7 ? 'long' : undefined,
    day: 'numeric',
    month: 'long',
    year: sameYear ? undefined : 'numeric',
  });
}

export function timeLabel(ts: number): string {
  return new Date(ts).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** Time for the conversation list: the hour today, else a short date. */
export function shortStamp(ts: number, now = Date.now()): string {
  if (!ts) return '';
  if (dayKey(ts) === dayKey(now)) return timeLabel(ts);
  return new Date(ts).toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}

export function lastSeenLabel(lastSeen: number | null, now = Date.now()): string {
  if (!lastSeen) return 'offline';
  const minutes = Math.round((now - lastSeen) / 60_000);
  if (minutes < 1) return 'last seen just now';
  if (minutes < 60) return `last seen ${minutes} min ago`;
  if (dayKey(lastSeen) === dayKey(now)) return `last seen today at ${timeLabel(lastSeen)}`;
  return `last seen ${shortStamp(lastSeen, now)}`;
}

/** Initial for an avatar: first letter, upper case. */
export function initial(name: string): string {
  return (name.trim()[0] ?? '?').toUpperCase();
}

/** A stable hue (0..5) per name, for avatar colours chosen by CSS classes (no inline styles under our CSP). */
export function hueClass(name: string): string {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hue-${h % 6}`;
}
