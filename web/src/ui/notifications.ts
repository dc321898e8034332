// Notifications (issue #15): desktop notifications through the Notification API, the unread total in the tab title
// and an optional short tone. A notification shows when the tab is hidden or another conversation is open, never
// for my own messages, muted conversations or blocked people; what it shows follows Settings → Notification content
// (name and message, name only — the default —, or nothing but "New message"). Clicking it focuses the tab and opens
// the conversation. Permission is only ever asked from a user action (Settings → "Enable desktop notifications").
import { useEffect, useRef } from 'react';
import type { ChatEngineApi, ChatMessage, EngineSnapshot } from '../client/types';

export const APP_TITLE = 'WeConnect';

/** Whether this browser has the Notification API at all. */
export function notificationsSupported(): boolean {
  return typeof window !== 'undefined' && 'Notification' in window;
}

/** Asks for permission (call from a click handler only). */
export async function requestNotificationPermission(): Promise<NotificationPermission> {
  if (!notificationsSupported()) return 'denied';
  return Notification.requestPermission();
}

/** "(3) WeConnect": the unread messages of conversations that are not muted. */
export function titleFor(snapshot: EngineSnapshot): string {
  const muted = new Set(snapshot.preferences.muted);
  const total = snapshot.conversations.reduce((n, c) => n + (muted.has(c.conv) ? 0 : c.unread), 0);
  return total > 0 ? `(${total > 999 ? '999+' : total}) ${APP_TITLE}` : APP_TITLE;
}

/** What a notification says for a message, by the content setting. */
export function notificationContent(
  snapshot: EngineSnapshot,
  conv: string,
  message: ChatMessage,
): { title: string; body: string } {
  const mode = snapshot.preferences.notifyContent;
  if (mode === 'none') return { title: APP_TITLE, body: 'New message' };
  const c = snapshot.conversations.find((x) => x.conv === conv);
  const name = c?.group ? `${message.senderName ?? 'Someone'} in ${c.username}` : (c?.username ?? 'Someone');
  if (mode === 'name') return { title: name, body: 'New message' };
  const text = message.text || (message.attachments?.length ? 'Attachment' : 'New message');
  return { title: name, body: text.length > 200 ? `${text.slice(0, 199)}…` : text };
}

let audio: AudioContext | null = null;

/** A short soft tone made with WebAudio (no sound file). */
export function playTone(): void {
  try {
    audio ??= new AudioContext();
    const ctx = audio;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.15, ctx.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.25);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.3);
  } catch {
    // no audio output: nothing to do
  }
}

/**
 * Keeps the tab title's unread count and shows a notification for each new message that should have one.
 * `openConv`: the conversation on screen (null when none); `onOpen`: open a conversation (a notification's click).
 */
export function useNotifications(
  engine: ChatEngineApi,
  snapshot: EngineSnapshot,
  openConv: string | null,
  onOpen: (conv: string) => void,
): void {
  const latest = useRef({ openConv, onOpen });
  latest.current = { openConv, onOpen };

  const title = titleFor(snapshot);
  useEffect(() => {
    document.title = title;
  }, [title]);

  useEffect(
    () =>
      engine.onArrival((conv, message) => {
        // The engine's snapshot, not the last rendered one: a new conversation may not have rendered yet.
        const snap = engine.getSnapshot();
        const { openConv: open, onOpen: openIt } = latest.current;
        if (message.mine || message.kind === 'notice') return;
        if (snap.preferences.muted.includes(conv)) return;
        const sender = message.sender ?? conv;
        if (snap.blocked.some((p) => p.userId === sender || p.userId === conv)) return;
        if (document.visibilityState === 'visible' && open === conv) return;
        if (snap.preferences.sound) playTone();
        if (!notificationsSupported() || Notification.permission !== 'granted') return;
        const { title: t, body } = notificationContent(snap, conv, message);
        try {
          const n = new Notification(t, { body, tag: `weconnect-${conv}` });
          n.onclick = () => {
            window.focus();
            openIt(conv);
            n.close();
          };
        } catch {
          // some browsers only allow notifications from a service worker: the title count still says it
        }
      }),
    [engine],
  );
}
