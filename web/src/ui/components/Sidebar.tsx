// Sidebar: who I am, people search, and the conversation list (last message, unread count, online dot).
import { useEffect, useState } from 'react';
import type { ChatEngineApi, EngineSnapshot, Person } from '../../client/types';
import { shortStamp } from '../format';
import { Avatar } from './Avatar';
import { DisplayName } from '../profile/profiles-context';
import { GroupAvatar } from './GroupAvatar';

interface Props {
  engine: ChatEngineApi;
  snapshot: EngineSnapshot;
  selected: string | null;
  onSelect: (conv: string) => void;
  onSettings: () => void;
  onNewGroup: () => void;
}

export function Sidebar({ engine, snapshot, selected, onSelect, onSettings, onNewGroup }: Props) {
  const [query, setQuery] = useState('');
  const [results, setResults] = useState<Person[]>([]);
  const [searchError, setSearchError] = useState<string | null>(null);

  useEffect(() => {
    const q = query.trim();
    if (q.length === 0) {
      setResults([]);
      setSearchError(null);
      return;
    }
    let cancelled = false;
    const t = setTimeout(() => {
      engine
        .searchPeople(q)
        .then((people) => {
          if (cancelled) return;
          setResults(people.filter((p) => p.userId !== snapshot.me.userId));
          setSearchError(null);
        })
        .catch((e: unknown) => !cancelled && setSearchError(e instanceof Error ? e.message : String(e)));
    }, 200);
    return () => {
      cancelled = true;
      clearTimeout(t);
    };
  }, [engine, query, snapshot.me.userId]);

  async function start(person: Person) {
    await engine.openConversation(person);
    setQuery('');
    onSelect(person.userId);
  }

  const { me, connection } = snapshot;
  const nameOf = (userId: string | undefined) => {
    const name = userId ? snapshot.profiles[userId]?.name : undefined;
    return name ? ` (${name})` : '';
  };
  return (
    <aside className="sidebar" aria-label="Conversations sidebar">
      <header className="sidebar-head">
        <Avatar name={me.username} userId={me.userId} />
        <div className="me">
          <span className="me-name">
            <DisplayName userId={me.userId} username={me.username} />
          </span>
          <span className={`conn conn-${connection}`}>
            {connection === 'online' ? 'Connected' : connection === 'connecting' ? 'Connecting…' : 'Offline'}
          </span>
        </div>
        <button type="button" className="icon-btn" aria-label="Settings" onClick={onSettings}>
          <span className="icon icon-gear" aria-hidden="true" />
        </button>
      </header>
      <div className="search">
        <button type="button" className="btn btn-ghost new-group" onClick={onNewGroup}>
          New group
        </button>
        <input
          type="search"
          aria-label="Find people"
          placeholder="Find people"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Escape') setQuery('');
          }}
        />
      </div>
      {query.trim() ? (
        <section className="search-results" aria-label="People">
          {searchError ? (
            <p role="alert" className="form-error pad">
              {searchError}
            </p>
          ) : results.length === 0 ? (
            <p className="muted pad">No one found.</p>
          ) : (
            <ul>
              {results.map((p) => (
                <li key={p.userId}>
                  <button type="button" className="person" onClick={() => void start(p)}>
                    <Avatar name={p.username} size="sm" />
                    <span>{p.username}</span>
                  </button>
                </li>
              ))}
            </ul>
          )}
        </section>
      ) : null}
      <nav className="conversations" aria-label="Conversations">
        {snapshot.conversations.length === 0 ? (
          <p className="muted pad">No conversations yet.</p>
        ) : (
          <ul>
            {snapshot.conversations.map((c) => (
              <li key={c.conv}>
                <button
                  type="button"
                  className={`conversation${c.conv === selected ? ' selected' : ''}`}
                  aria-current={c.conv === selected ? 'true' : undefined}
                  onClick={() => onSelect(c.conv)}
                >
                  {c.group ? (
                    <GroupAvatar name={c.username} picture={c.group.picture} />
                  ) : (
                    <Avatar name={c.username} userId={c.conv} online={snapshot.presence[c.conv]?.online ?? false} />
                  )}
                  <span className="conv-body">
                    <span className="conv-top">
                      <span className="conv-name">
                        {/* The button's name comes from its content and starts with the visible name (WCAG 2.5.3):
                            "ann, 2 unread", "Trip (group)", then the time and the last message. One hidden-visually
                            span holds it, as a separate span would add a space before the comma. */}
                        <span aria-hidden="true">
                          <DisplayName userId={c.group ? undefined : c.conv} username={c.username} />
                        </span>
                        <span className="sr-only">
                          {`${c.username}${nameOf(c.group ? undefined : c.conv)}${c.group ? ' (group)' : ''}${c.unread ? `, ${c.unread} unread` : ''}${snapshot.preferences.muted.includes(c.conv) ? ', muted' : ''}`}
                        </span>
                        {snapshot.preferences.muted.includes(c.conv) ? (
                          <span className="icon icon-muted conv-muted" aria-hidden="true" title="Muted" />
                        ) : null}
                        {snapshot.trust[c.conv]?.verified ? (
                          <span className="verified-badge small" aria-hidden="true">
                            <span className="icon icon-check" />
                          </span>
                        ) : null}
                      </span>
                      <span className="conv-time">{shortStamp(c.lastTs)}</span>
                    </span>
                    <span className="conv-bottom">
                      <span className="conv-last">{c.lastText || 'No messages yet'}</span>
                      {c.unread ? (
                        <span className="badge" aria-hidden="true">
                          {c.unread > 99 ? '99+' : c.unread}
                        </span>
                      ) : null}
                    </span>
                  </span>
                </button>
              </li>
            ))}
          </ul>
        )}
      </nav>
    </aside>
  );
}
