// App: picks the screen (sign up / sign in, unlock, chat) and loads the engine lazily so this paints first.
import { useCallback, useEffect, useState } from 'react';
import type { ChatEngineApi, EngineBootApi } from '../client/types';
import { AuthScreen } from './screens/AuthScreen';
import { ChatScreen } from './screens/ChatScreen';
import { UnlockScreen } from './screens/UnlockScreen';
import { Splash } from './components/Splash';

type Screen =
  | { kind: 'loading' }
  | { kind: 'auth' }
  | { kind: 'unlock'; username: string }
  | { kind: 'chat'; engine: ChatEngineApi }
  | { kind: 'fatal'; message: string };

export function App() {
  const [boot, setBoot] = useState<EngineBootApi | null>(null);
  const [screen, setScreen] = useState<Screen>({ kind: 'loading' });

  const showStart = useCallback(async (b: EngineBootApi) => {
    const local = await b.localAccount();
    if (local.kind === 'none') return setScreen({ kind: 'auth' });
    const resumed = await b.tryAutoUnlock();
    if (resumed) return setScreen({ kind: 'chat', engine: resumed });
    setScreen({ kind: 'unlock', username: local.username });
  }, []);

  useEffect(() => {
    let cancelled = false;
    import('../client/boot')
      .then(async ({ createBrowserBoot }) => {
        const b = createBrowserBoot();
        if (cancelled) return;
        setBoot(b);
        await showStart(b);
      })
      .catch((error: unknown) => {
        if (!cancelled) setScreen({ kind: 'fatal', message: error instanceof Error ? error.message : String(error) });
      });
    return () => {
      cancelled = true;
    };
  }, [showStart]);

  const onSignedIn = useCallback((engine: ChatEngineApi) => setScreen({ kind: 'chat', engine }), []);
  const onSignedOut = useCallback(() => {
    if (boot) void showStart(boot);
  }, [boot, showStart]);

  switch (screen.kind) {
    case 'loading':
      return <Splash />;
    case 'fatal':
      return <Splash error={screen.message} />;
    case 'auth':
      return boot ? <AuthScreen boot={boot} onSignedIn={onSignedIn} /> : <Splash />;
    case 'unlock':
      return boot ? (
        <UnlockScreen
          boot={boot}
          username={screen.username}
          onUnlocked={onSignedIn}
          onForgotten={() => setScreen({ kind: 'auth' })}
        />
      ) : (
        <Splash />
      );
    case 'chat':
      return <ChatScreen engine={screen.engine} onSignedOut={onSignedOut} />;
  }
}
