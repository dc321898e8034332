// Reactions: the chips under a bubble, one per emoji with its count; mine is pressed, and pressing it takes my
// reaction back (pressing another adds mine with that emoji).
interface Props {
  reactions: readonly { from: string; emoji: string }[];
  me: string;
  onReact: (emoji: string) => void;
  onUnreact: () => void;
}

export function Reactions({ reactions, me, onReact, onUnreact }: Props) {
  const counts = new Map<string, number>();
  for (const r of reactions) counts.set(r.emoji, (counts.get(r.emoji) ?? 0) + 1);
  const mine = reactions.find((r) => r.from === me)?.emoji;
  return (
    <div className="reactions" role="group" aria-label="Reactions">
      {[...counts].map(([emoji, count]) => (
        <button
          key={emoji}
          type="button"
          className={`reaction-chip${emoji === mine ? ' is-mine' : ''}`}
          aria-pressed={emoji === mine}
          aria-label={`${emoji} ${count}${emoji === mine ? ', yours: remove' : ''}`}
          onClick={() => (emoji === mine ? onUnreact() : onReact(emoji))}
        >
          <span aria-hidden="true">{emoji}</span>
          <span className="count" aria-hidden="true">
            {count}
          </span>
        </button>
      ))}
    </div>
  );
}
