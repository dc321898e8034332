// ChatScreen: the signed-in layout — sidebar (search, conversations) and the open conversation or settings.
import { useState } from 'react';
import type { ChatEngineApi } from '../../client/types';
import { ConversationView } from '../components/ConversationView';
import { DeviceRemovedScreen } from '../components/DeviceRemovedScreen';
import { GroupMembersPanel } from '../components/GroupMembersPanel';
import { NewGroupPanel } from '../components/NewGroupPanel';
import { SafetyNumberPanel } from '../components/SafetyNumberPanel';
import { Notices } from '../components/Notices';
import { SessionEnded } from '../components/SessionEnded';
import { SettingsPanel } from '../components/SettingsPanel';
import { Sidebar } from '../components/Sidebar';
import { useSnapshot } from '../hooks/useEngine';
import { useNotifications } from '../notifications';
import { ProfilesProvider } from '../profile/profiles-context';

type Pane =
  | { kind: 'empty' }
  | { kind: 'conversation'; conv: string }
  | { kind: 'safety'; conv: string }
  | { kind: 'members'; conv: string }
  | { kind: 'new-group' }
  | { kind: 'settings' };

export function ChatScreen({ engine, onSignedOut }: { engine: ChatEngineApi; onSignedOut: () => void }) {
  const snapshot = useSnapshot(engine);
  const [pane, setPane] = useState<Pane>({ kind: 'empty' });
  // Unsent text per conversation, in memory only (never stored). A composer writes to its own conversation's entry,
  // so text typed while another conversation is opening stays where it was typed.
  const [drafts] = useState(() => new Map<string, string>());

  const shownConv = pane.kind === 'conversation' ? pane.conv : null;
  useNotifications(engine, snapshot, shownConv, (conv) => setPane({ kind: 'conversation', conv }));

  if (snapshot.deviceRemoved) return <DeviceRemovedScreen onContinue={onSignedOut} />;
  const paneConv = 'conv' in pane ? pane.conv : null;
  const open = paneConv ? snapshot.conversations.find((c) => c.conv === paneConv) : undefined;

  return (
    <ProfilesProvider profiles={snapshot.profiles}>
      <div className={`app ${pane.kind === 'empty' ? 'pane-list' : 'pane-main'}`}>
        <Sidebar
          engine={engine}
          snapshot={snapshot}
          selected={paneConv}
          onSelect={(conv) => setPane({ kind: 'conversation', conv })}
          onSettings={() => setPane({ kind: 'settings' })}
          onNewGroup={() => setPane({ kind: 'new-group' })}
        />
        <main className="main">
          {snapshot.sessionEnded ? <SessionEnded engine={engine} onSignedOut={onSignedOut} /> : null}
          <Notices engine={engine} notices={snapshot.notices} connection={snapshot.connection} />
          {pane.kind === 'settings' ? (
            <SettingsPanel
              engine={engine}
              sharePresence={snapshot.sharePresence}
              blocked={snapshot.blocked}
              preferences={snapshot.preferences}
              onClose={() => setPane({ kind: 'empty' })}
              onSignedOut={onSignedOut}
            />
          ) : pane.kind === 'new-group' ? (
            <NewGroupPanel
              engine={engine}
              me={snapshot.me.userId}
              onCreated={(conv) => setPane({ kind: 'conversation', conv })}
              onClose={() => setPane({ kind: 'empty' })}
            />
          ) : pane.kind === 'safety' && open ? (
            <SafetyNumberPanel
              engine={engine}
              conv={open.conv}
              username={open.username}
              trust={snapshot.trust[open.conv]}
              onClose={() => setPane({ kind: 'conversation', conv: open.conv })}
            />
          ) : pane.kind === 'members' && open?.group ? (
            <GroupMembersPanel
              engine={engine}
              me={snapshot.me.userId}
              conversation={open}
              onClose={() => setPane({ kind: 'conversation', conv: open.conv })}
            />
          ) : pane.kind === 'conversation' && open ? (
            <ConversationView
              key={open.conv}
              engine={engine}
              conversation={open}
              presence={snapshot.presence[open.conv]}
              typingUntil={snapshot.typingUntil[open.conv] ?? 0}
              typingName={snapshot.typingName[open.conv]}
              trust={snapshot.trust[open.conv]}
              blocked={snapshot.blocked.some((p) => p.userId === open.conv)}
              draft={drafts.get(open.conv) ?? ''}
              onDraft={(text) => (text ? drafts.set(open.conv, text) : drafts.delete(open.conv))}
              onBack={() => setPane({ kind: 'empty' })}
              onSafetyNumber={() => setPane({ kind: 'safety', conv: open.conv })}
              onMembers={() => setPane({ kind: 'members', conv: open.conv })}
              muted={snapshot.preferences.muted.includes(open.conv)}
            />
          ) : (
            <div className="empty-state">
              <div className="empty-illustration" aria-hidden="true" />
              <h2>Your messages are end-to-end encrypted</h2>
              <p className="muted">Find someone by username on the left to start a conversation.</p>
            </div>
          )}
        </main>
      </div>
    </ProfilesProvider>
  );
}
