// PeoplePicker: search people by username and pick several (for a new group or adding members).
import { useEffect, useState } from 'react';
import type { ChatEngineApi, Person } from '../../client/types';
import { Avatar } from './Avatar';
import { FormError } from './FormError';

interface Props {
  engine: ChatEngineApi;
  exclude: readonly string[];
  picked: readonly Person[];
  onChange: (people: Person[]) => void;
}

export function PeoplePicker({ engine, exclude, picked, onChange }: Props) {
  const [query, setQuery] = useState('');
  const [results, setResults] = useState<Person[]>([]);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setResults([]);
      return;
    }
    let cancelled = false;
    const t = setTimeout(() => {
      engine.searchPeople(q).then(
        (people) => {
          if (cancelled) return;
          setResults(people.filter((p) => !exclude.includes(p.userId)));
          setError(null);
        },
        (e: unknown) => !cancelled && setError(e instanceof Error ? e.message : String(e)),
      );
    }, 200);
    return () => {
      cancelled = true;
      clearTimeout(t);
    };
  }, [engine, query, exclude]);

  const isPicked = (p: Person) => picked.some((x) => x.userId === p.userId);

  return (
    <div className="picker">
      {picked.length > 0 ? (
        <ul className="chips" aria-label="Selected people">
          {picked.map((p) => (
            <li key={p.userId} className="chip">
              <span>{p.username}</span>
              <button
                type="button"
                className="icon-btn small"
                aria-label={`Remove ${p.username}`}
                onClick={() => onChange(picked.filter((x) => x.userId !== p.userId))}
              >
                <span className="icon icon-close" aria-hidden="true" />
              </button>
            </li>
          ))}
        </ul>
      ) : null}
      <input
        type="search"
        className="picker-search"
        aria-label="Add people"
        placeholder="Search by username"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
      />
      <FormError error={error} />
      {query.trim() && results.length === 0 && !error ? <p className="muted">No one found.</p> : null}
      <ul className="picker-results">
        {results.map((p) => (
          <li key={p.userId}>
            <button
              type="button"
              className={`person${isPicked(p) ? ' selected' : ''}`}
              aria-pressed={isPicked(p)}
              onClick={() => {
                onChange(isPicked(p) ? picked.filter((x) => x.userId !== p.userId) : [...picked, p]);
                setQuery('');
              }}
            >
              <Avatar name={p.username} size="sm" />
              <span>{p.username}</span>
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}
