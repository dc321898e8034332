// The engine's public shapes: what the UI reads (snapshots, messages) and the events it subscribes to.

import type { AttachmentsApi } from './attachments';
import type { DevicesApi } from './devices';
import type { Preferences } from './preferences';
import type { Attachment, Reply } from './schemas';

export type ConnectionState = 'connecting' | 'online' | 'offline';

/** pending: in the outbox; sent: the relay acknowledged; delivered / read: receipts from the peer. */
export type MessageStatus = 'pending' | 'sent' | 'delivered' | 'read';

/** What a message carries besides its text (issue #15). */
export interface SendExtra {
  reply?: Reply;
  attachments?: Attachment[];
}

/** A message action's stamp: its relay timestamp and id. */
export interface ActionStamp {
  ts: number;
  id: string;
}

export interface ActionClock {
  edit?: ActionStamp;
  react?: Record<string, ActionStamp>;
}

export interface ChatMessage {
  id: string;
  /** The conversation: the peer's userId. */
  conv: string;
  mine: boolean;
  text: string;
  /** Milliseconds since the epoch: the relay time when known, else the local send time. */
  ts: number;
  status: MessageStatus;
  /** Set when the message could not be decrypted; `text` is then empty. */
  failure?: string;
  /** Group messages from others: who sent it (user id and name). */
  sender?: string;
  senderName?: string;
  /** A failed one-to-one message: the device its envelope named, where "Ask to resend" goes. */
  senderDevice?: string;
  /** A failed entry standing for several undecryptable messages from the same contact: every id to ask for. */
  failedIds?: string[];
  /** A line about the conversation itself ("ann added ben", "ann added a new device"), not a message anyone wrote. */
  kind?: 'notice';
  // ── rich messaging (issue #15) ──
  /** The message this one answers, as its sender quoted it. */
  reply?: Reply;
  attachments?: Attachment[];
  /** One reaction per person: the latest they sent. */
  reactions?: { from: string; emoji: string }[];
  /** When the latest edit arrived; `text` is the edited text. */
  edited?: number;
  /** Deleted for everyone: `text` is empty and the attachments are gone. */
  deleted?: true;
  /** The stamps of the latest edit and of each person's latest reaction (later ones win; see action-state.ts). */
  actionClock?: ActionClock;
  /** Disappearing messages: the timer in force when it was sent, and when this copy is deleted. */
  expireSeconds?: number;
  expiresAt?: number;
}

/** A group conversation's membership as this device knows it (names arrive encrypted, ids from the relay). */
export interface GroupInfo {
  name: string;
  members: Person[];
  admins: string[];
  /** We left or were removed: the conversation stays readable, sending is off. */
  left: boolean;
  /** Known only from the relay's member list (a new device of ours) until our other device sends the name. */
  placeholder?: boolean;
  /** The group picture (JPEG, PNG or WebP bytes, checked), set by an admin; travels encrypted, pairwise. */
  picture?: Uint8Array;
}

export interface Conversation {
  /** The peer's userId, or the groupId of a group. */
  conv: string;
  /** The peer's username, or the group's name. */
  username: string;
  group?: GroupInfo;
  lastText: string;
  lastTs: number;
  unread: number;
  /** Disappearing messages: the conversation's timer in seconds (absent: off). */
  expireSeconds?: number;
}

/** What this device knows about a contact's identity key. */
export interface ContactTrust {
  /** The user compared safety numbers and marked the key as verified. */
  verified: boolean;
  /** The key changed since first seen (banner until acknowledged). */
  keyChanged: boolean;
  /** A verified contact's key changed: sending waits until the user accepts the new key. */
  blocked: boolean;
  /** The contact's account was deleted (the relay no longer knows it): nothing can be sent. Absent otherwise. */
  deleted?: boolean;
  /** Key transparency (issue #16): the contact's keys failed the relay log check; nothing can be sent. Why. */
  transparency?: string;
}

export interface SafetyNumberView {
  /** 60 digits, and the same in 12 groups of 5. */
  digits: string;
  groups: string[];
  /** Bytes for the QR code (crypto `safetyNumber().qr`). */
  qr: Uint8Array;
  /** The key the number covers (what "Mark as verified" records). */
  identityKey: string;
  username: string;
}

export interface Person {
  userId: string;
  username: string;
}

export interface Presence {
  online: boolean;
  lastSeen: number | null;
}

export interface Me {
  userId: string;
  username: string;
  deviceId: string;
}

export interface EngineSnapshot {
  me: Me;
  connection: ConnectionState;
  /** Most recent first. */
  conversations: readonly Conversation[];
  presence: Readonly<Record<string, Presence>>;
  /** userId → time (ms) until which "is typing…" shows. */
  typingUntil: Readonly<Record<string, number>>;
  /** conversation → who is typing (groups show the name). */
  typingName: Readonly<Record<string, string>>;
  /** userId → identity-key trust (verified badge, key-change banner). */
  trust: Readonly<Record<string, ContactTrust>>;
  sharePresence: boolean;
  /** Human-readable problems to show (relay unreachable, a message failed to decrypt…), newest last. */
  notices: readonly Notice[];
  /** This device was removed from the account by another of its devices; its local keys and data are wiped. */
  deviceRemoved?: boolean;
  /** userId → profile (ours included), for the users whose profile key this device holds. */
  profiles: Readonly<Record<string, ProfileView>>;
  /** The people this account blocks, oldest block first. */
  blocked: readonly Person[];
  /** The relay ended this device's session (revoked, or too old): sign in again; nothing local is lost. */
  sessionEnded: boolean;
  /** This device's notification and privacy choices (issue #15). */
  preferences: Preferences;
}

/** A user's profile as this device opened it (display name '' when none is set; picture bytes or null). */
export interface ProfileView {
  name: string;
  picture: Uint8Array | null;
}

export interface Notice {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

/** What exists on this device before anyone signs in. */
export type LocalAccountState = { kind: 'none' } | { kind: 'locked'; username: string; userId: string };

export interface HistoryPage {
  /** Oldest first. */
  messages: ChatMessage[];
  /** Pass as `before` to load the page before this one; null at the start of the conversation. */
  cursor: number | null;
}

export type MessageListener = (conv: string, messages: readonly ChatMessage[]) => void;

/** The signed-in engine as the UI sees it (implemented by ChatClient). */
/** Key transparency (issue #16), as Settings shows it: the relay's log key this device checks against, and how. */
export interface KeyTransparencyStatus {
  /** The relay's C2SP verifier key. */
  verifierKey: string;
  /** 'tofu': taken from the relay on first use; 'configured': given to the app. */
  pinned: 'tofu' | 'configured';
  /** The size of the newest log checkpoint this device verified, if any. */
  treeSize: number | null;
  /** Witness cosignature keys the user configured (each checkpoint must carry a cosignature of each). */
  witnessKeys: string[];
  /** Witness keys the deployment requires (not editable in Settings). */
  deploymentWitnessKeys: string[];
}

/** Issue #16: whether the release manifest the relay serves is in its public log (release-log.ts). */
export type ReleaseLogCheck =
  /** The relay serves no release manifest: there is nothing to look up. */
  | { kind: 'none' }
  /** The manifest served is entry `index` of the log, in a checkpoint of `treeSize` leaves this device verified. */
  | { kind: 'logged'; index: number; treeSize: number }
  /** The relay serves a manifest it did not log, or its log does not verify: why. */
  | { kind: 'failed'; reason: string }
  /** The manifest or the log could not be read (an outage): why. Nothing is known either way. */
  | { kind: 'unavailable'; reason: string };

export interface ChatEngineApi {
  subscribe(listener: () => void): () => void;
  getSnapshot(): EngineSnapshot;
  /** The relay log key this device pinned and the newest checkpoint it verified; null before the first check. */
  keyTransparencyStatus(): Promise<KeyTransparencyStatus | null>;
  /**
   * Key transparency: re-runs a blocked contact's check with a fresh checkpoint, bundle and proofs. Resolves when it
   * passed (the block is lifted); throws `transparency_failed` (the block stays, with the new reason) otherwise.
   */
  recheckContact(userId: string): Promise<void>;
  /**
   * Key transparency: configures the relay's log key. 'mismatch' (nothing saved) when the key does not verify the
   * checkpoint this device holds; `replace` then pins it anyway and drops that checkpoint. `invalid_input` if bad.
   */
  configureLogKey(key: string, replace?: boolean): Promise<'saved' | 'mismatch'>;
  /** Key transparency: the witness keys (C2SP cosignature keys) every checkpoint must be cosigned by. */
  configureWitnesses(keys: string[]): Promise<void>;
  /** Whether the release manifest document `manifestBytes` (exactly as the relay served it) is in the relay's log. */
  verifyRelease(manifestBytes: Uint8Array): Promise<ReleaseLogCheck>;
  /** New or changed messages (arrivals, status ticks), per conversation. */
  onMessages(listener: MessageListener): () => void;
  searchPeople(query: string): Promise<Person[]>;
  openConversation(person: Person): Promise<void>;
  /** Queues a text message; resolves with its id once it is safely in the outbox. */
  /** Queues a message; `extra` carries what it answers and its (already uploaded) attachments. Returns its id. */
  send(conv: string, text: string, extra?: SendExtra): Promise<string>;
  loadHistory(conv: string, before: number | null, limit?: number): Promise<HistoryPage>;
  // ── message actions (issue #15) ──
  /** Reacts with one emoji (replaces our earlier reaction to that message). */
  react(conv: string, messageId: string, emoji: string): Promise<void>;
  /** Takes our reaction back. */
  unreact(conv: string, messageId: string): Promise<void>;
  /** Replaces the text of one of our messages for everyone. */
  edit(conv: string, messageId: string, text: string): Promise<void>;
  /** Deletes one of our messages for everyone (within 24 hours of sending it). */
  deleteForEveryone(conv: string, messageId: string): Promise<void>;
  /** Removes a message from this device only (our other devices keep it). */
  deleteForMe(conv: string, messageId: string): Promise<void>;
  /** Sends a failed message again as a new message; the failed one is removed. Returns the new id. */
  retry(conv: string, messageId: string): Promise<string>;
  markRead(conv: string): Promise<void>;
  notifyTyping(conv: string): void;
  setSharePresence(on: boolean): Promise<void>;
  /** Creates a group (us as admin) and tells the members its name; returns the conversation id (the groupId). */
  createGroup(name: string, members: readonly Person[]): Promise<string>;
  addGroupMembers(conv: string, people: readonly Person[]): Promise<void>;
  removeGroupMember(conv: string, userId: string): Promise<void>;
  leaveGroup(conv: string): Promise<void>;
  /** Admins: renames the group for every member (the name travels encrypted; members accept it from admins only). */
  renameGroup(conv: string, name: string): Promise<void>;
  /** Admins: sets (image bytes, already cropped and resized) or removes (null) the group picture for every member. */
  setGroupPicture(conv: string, picture: Uint8Array | null): Promise<void>;
  /** Admins: makes a member an admin, or an admin a plain member (the relay refuses to leave no admin). */
  setGroupAdmin(conv: string, userId: string, admin: boolean): Promise<void>;
  /** The safety number for a one-to-one conversation (digits and QR bytes). */
  safetyNumber(conv: string): Promise<SafetyNumberView>;
  /** Records that the user compared the safety number for `identityKey` (refused if the key changed meanwhile). */
  markVerified(conv: string, identityKey: string): Promise<void>;
  /** Accepts a contact's changed key (unblocks sending; the contact is unverified again) or dismisses the banner. */
  acceptIdentityChange(conv: string): Promise<void>;
  /** Asks the sender of a message that could not be decrypted to send it again. */
  requestResend(conv: string, messageId: string): Promise<void>;
  dismissNotice(id: number): void;
  /** Seals and uploads our display name and picture (the encoded square, or null), then tells our contacts. */
  saveProfile(name: string, picture: Uint8Array | null): Promise<void>;
  signOut(keepLocalData: boolean): Promise<void>;
  /** This account's devices (Settings → Devices). */
  readonly devices: DevicesApi;
  /** Attachments (issue #15): upload before `send(conv, text, { attachments })`, download to show or save. */
  readonly attachments: AttachmentsApi;
  /**
   * Replaces the password (a new salt, auth key and key box; see account.ts for why no step can lock the user out).
   * Other devices stay signed in; the new password works at their next unlock.
   */
  changePassword(
    current: string,
    next: string,
    progress?: (step: 'checking' | 'deriving' | 'saving') => void,
  ): Promise<void>;
  /** Erases the account on the relay, proved with the password, then wipes this browser's data and closes. */
  deleteAccount(password: string): Promise<void>;
  /** Blocks a person: the relay refuses what they send us, and this device drops whatever still arrives. */
  block(person: Person): Promise<void>;
  unblock(userId: string): Promise<void>;
  // ── notifications, privacy, disappearing messages (issue #15) ──
  /** Changes notification and privacy choices (stored sealed on this device). */
  setPreferences(patch: Partial<Preferences>): Promise<void>;
  /** Mutes (no notifications, not counted in the title) or unmutes a conversation. */
  setMuted(conv: string, muted: boolean): Promise<void>;
  /** Sets the conversation's disappearing timer (seconds, 0 off) for everyone in it; groups: admins only. */
  setDisappearing(conv: string, seconds: number): Promise<void>;
  /** A new message from someone else was stored (for notifications; not called for ticks or edits). */
  onArrival(listener: (conv: string, message: ChatMessage) => void): () => void;
  /** Messages were deleted (their disappearing timer ran out): drop them from view. */
  onMessagesRemoved(listener: (conv: string, ids: readonly string[]) => void): () => void;
}

/** Progress of a long step (Argon2id), for the progress indicator. */
export type BootProgress = (step: 'deriving' | 'registering' | 'restoring' | 'connecting') => void;

/** Before sign-in: what the first screens call. */
export interface EngineBootApi {
  localAccount(): Promise<LocalAccountState>;
  /** True when another tab of this browser profile runs WeConnect (holds the one-writer lock). */
  openElsewhere(): Promise<boolean>;
  /** Resumes without a password when the user chose "keep unlocked on this device". */
  tryAutoUnlock(): Promise<ChatEngineApi | null>;
  signUp(username: string, password: string, progress?: BootProgress): Promise<ChatEngineApi>;
  signIn(username: string, password: string, progress?: BootProgress): Promise<ChatEngineApi>;
  unlock(password: string, keepUnlocked: boolean, progress?: BootProgress): Promise<ChatEngineApi>;
  /** Deletes the local account (keys and history) of this browser profile. */
  forgetLocalAccount(): Promise<void>;
}
