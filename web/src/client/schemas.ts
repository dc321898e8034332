// Schemas for everything the engine reads from outside its own memory: IndexedDB records, decrypted payloads,
// relay answers. Each takes `unknown`; nothing is trusted until parsed.

import { ID_PATTERN, idSchema, isId } from '@weconnect/relay/protocol';
import { z } from 'zod';
import { MAX_TEXT_BYTES } from './message-limits';
import { sealedSchema } from './vault';

/**
 * A user, device or group id exactly as the relay issues them (the wire contract's id: 16 random bytes as canonical
 * unpadded base64url). Nothing else is accepted from the relay or from a peer, so no id can contain a separator or
 * spoof a prefix of another (session records are keyed by [userId, deviceId] arrays as well).
 */
export const RELAY_ID = ID_PATTERN;
export const relayIdSchema = idSchema;
/** True for an id in the relay's exact format. */
export const isRelayId = isId;
const id = relayIdSchema;
/** Message ids are made by clients in the same format (16 random bytes). */
const messageId = relayIdSchema;

// ── IndexedDB records ──────────────────────────────────────────────────────────────────────────────────────

/** meta 'account': readable before unlock (no secrets). */
export const accountMetaSchema = z.object({
  version: z.literal(1),
  userId: id,
  username: z.string().min(1).max(32),
  deviceId: id,
  salt: z.string(),
  opslimit: z.number().int().positive(),
  memlimit: z.number().int().positive(),
  /** A sealed constant: opening it proves the password (and so the at-rest key) is right. */
  check: sealedSchema,
  /** After a password change: the vault's root sealed under the current password (see vault-root.ts). */
  vaultRoot: sealedSchema.optional(),
  /** The vault's root sealed under the account's backup key, for a device that only knows a newer password. */
  rootByBackup: sealedSchema.optional(),
});
export type AccountMeta = z.infer<typeof accountMetaSchema>;

export const tokensSchema = z.object({ refreshToken: z.string().min(1) });

export const signedPrekeysSchema = z.object({
  keys: z.array(z.object({ keyId: z.number().int().nonnegative(), createdAt: z.number(), key: z.unknown() })).min(1),
});
export type SignedPrekeysRecord = z.infer<typeof signedPrekeysSchema>;

export const oneTimePrekeysSchema = z.object({
  nextKeyId: z.number().int().positive(),
  keys: z.record(z.string(), z.unknown()),
});
export type OneTimePrekeysRecord = z.infer<typeof oneTimePrekeysSchema>;

/**
 * secrets 'backup-key': the account's random backup key (seals the relay's key backup), its key box (the same key
 * sealed under the password's wrap key, sent along with every backup so a new device can open it), and the highest
 * backup revision this device has seen on the relay or written there: an older one is refused as a rollback.
 * The password's wrap key itself is never stored (it is wiped once the vault is open and the backup key known).
 */
export const backupKeySchema = z.object({
  key: z.instanceof(Uint8Array).refine((k) => k.length === 32),
  keyBox: z.instanceof(Uint8Array),
  revision: z.number().int().nonnegative(),
});
export interface BackupKeyRecord {
  key: Uint8Array;
  keyBox: Uint8Array;
  revision: number;
}

/**
 * secrets 'wrap-key': what versions before the backup key kept (the password's wrap key, sealed). Read once to
 * migrate such a profile, then deleted.
 */
export const legacyWrapKeySchema = z.object({ key: z.instanceof(Uint8Array).refine((k) => k.length === 32) });

/** secrets 'group-sync': a device added to an existing account still has to learn its groups from the relay. */
export const groupSyncSchema = z.object({ pending: z.boolean() });

export const settingsSchema = z.object({ sharePresence: z.boolean() });

export const contactSchema = z.object({
  userId: id,
  username: z.string().min(1).max(32),
  identityKey: z.string(),
  verified: z.boolean(),
  /** The relay now shows a different key for this verified contact: sending waits until the user accepts it. */
  pendingIdentityKey: z.string().optional(),
  /** The key changed since we first saw it and the user has not acknowledged the banner yet. */
  keyChanged: z.boolean().optional(),
  /** Verification restored from the key backup: the username is a placeholder until the relay's bundle names it. */
  restored: z.boolean().optional(),
  /** The relay no longer knows this account (its bundle is 404): it was deleted. Sending is off. */
  deleted: z.boolean().optional(),
  /** Key transparency (issue #16): what the relay served for this contact failed the log check. Sending is off. */
  transparencyAlarm: z.string().max(500).optional(),
});
export type Contact = z.infer<typeof contactSchema>;

/**
 * secrets ['known-name', username]: the user id and identity key last seen under a username. A username registered
 * again after its account was deleted comes with a new user id and key: old contacts get the key-change warning.
 */
export const knownNameSchema = z.object({ userId: id, identityKey: z.string() });

// ── rich messaging (issue #15): attachments, replies, reactions ──

/** Attachments one message may carry. */
export const MAX_ATTACHMENTS = 10;
/** The timers "Disappearing messages" offers, in seconds (0 is off): 5 minutes, 1 hour, 1 day, 1 week. */
export const DISAPPEARING_TIMERS = [0, 300, 3_600, 86_400, 604_800] as const;

/** 32 bytes as canonical unpadded base64url (keys, SHA-256 digests). */
const bytes32 = z
  .string()
  .length(43)
  .regex(/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/, 'must be 32 bytes as base64url');

/**
 * An attachment as its message carries it (inside the end-to-end encryption): where the ciphertext is on the relay
 * (`blobId`), the key that opens it and the SHA-256 of the ciphertext (checked before anything is decrypted), the
 * size of the file, and what the sender says it is. `thumbnail`: for images, a small JPEG (base64url) shown while
 * the full image downloads. Names and types are shown only after sanitising (see attachments code).
 */
export const attachmentSchema = z.object({
  blobId: id,
  key: bytes32,
  digest: bytes32,
  /** Plaintext bytes (the blob is larger: padding and sealing). */
  size: z
    .number()
    .int()
    .nonnegative()
    .max(100 * 1024 * 1024),
  type: z.string().max(127),
  name: z.string().max(255),
  width: z.number().int().positive().max(65_535).optional(),
  height: z.number().int().positive().max(65_535).optional(),
  thumbnail: z.string().max(16_000).optional(),
});
export type Attachment = z.infer<typeof attachmentSchema>;

/** A quoted message: its id, who wrote it, and the start of its text as the replying sender saw it. */
export const replySchema = z.object({ id: messageId, author: id, text: z.string().max(200) });
export type Reply = z.infer<typeof replySchema>;

/** One emoji (or short emoji sequence: flags, skin tones, ZWJ families); never text or markup. */
export const emojiSchema = z
  .string()
  .min(1)
  .max(32)
  .refine(
    (e) =>
      /^(?:\p{Extended_Pictographic}|\p{Emoji_Component}|\p{Emoji_Modifier}|\u200d|\ufe0f)+$/u.test(e) &&
      // Emoji_Component alone also covers digits, '#' and '*': one pictograph, flag letter or keycap is required.
      /\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3/u.test(e),
    'must be an emoji',
  );

const actionStampSchema = z.object({ ts: z.number(), id: messageId });

export const messageStatusSchema = z.enum(['pending', 'sent', 'delivered', 'read']);

export const storedMessageSchema = z.object({
  id,
  conv: id,
  mine: z.boolean(),
  text: z.string(),
  ts: z.number(),
  status: messageStatusSchema,
  failure: z.string().optional(),
  sender: id.optional(),
  senderName: z.string().max(32).optional(),
  /** A failed one-to-one message: the device its envelope named (where "Ask to resend" goes), when all agreed. */
  senderDevice: id.optional(),
  /** A failed entry that stands for several undecryptable messages (coalesced): every id to ask for again. */
  failedIds: z.array(messageId).min(1).max(50).optional(),
  /** A system line about the conversation ("ann added ben", "ann added a new device"), stored like a message. */
  kind: z.literal('notice').optional(),
  // ── rich messaging (issue #15) ──
  /** The message this one answers, as the sender quoted it (the UI prefers the local original when it has it). */
  reply: replySchema.optional(),
  /** Attachments: what is needed to download, check and open each one (their keys never leave the sealed store). */
  attachments: z
    .array(z.lazy(() => attachmentSchema))
    .max(MAX_ATTACHMENTS)
    .optional(),
  /** Reactions, one per person (the latest one they sent): who and which emoji. */
  reactions: z
    .array(z.object({ from: id, emoji: emojiSchema }))
    .max(1024)
    .optional(),
  /** When the latest edit arrived (the text is the edited one). */
  edited: z.number().optional(),
  /** Deleted for everyone: text and attachments are gone; the UI shows "This message was deleted". */
  deleted: z.literal(true).optional(),
  /** Message actions: the stamps of the latest edit and of each person's latest reaction (see action-state.ts). */
  actionClock: z
    .object({
      edit: z.lazy(() => actionStampSchema).optional(),
      react: z
        .record(
          id,
          z.lazy(() => actionStampSchema),
        )
        .optional(),
    })
    .optional(),
  /** Disappearing messages: the timer (seconds) in force when it was sent, and when this copy is deleted. */
  expireSeconds: z.number().int().positive().optional(),
  expiresAt: z.number().optional(),
});

const personSchema = z.object({ userId: id, username: z.string().max(32) });

export const groupInfoSchema = z.object({
  name: z.string().max(100),
  members: z.array(personSchema).max(256),
  admins: z.array(id).max(256),
  left: z.boolean(),
  /** Known only from the relay's list (a new device of ours): no name yet, never announced to anyone. */
  placeholder: z.boolean().optional(),
  /** The group picture, checked when it arrived (see group-picture.ts). */
  picture: z
    .instanceof(Uint8Array)
    .refine((p) => p.length <= 24_000)
    .optional(),
});

export const conversationSummarySchema = z.object({
  username: z.string(),
  group: groupInfoSchema.optional(),
  lastText: z.string(),
  lastTs: z.number(),
  unread: z.number().int().nonnegative(),
});

// ── decrypted payloads (Content.body, JSON) ────────────────────────────────────────────────────────────────

/** A text's longest length in UTF-16 units: never less than its encoded bytes, so never below the composer's limit. */
export const MAX_TEXT = MAX_TEXT_BYTES;
export const chatPayloadSchema = z
  .object({
    v: z.literal(1),
    /** May be empty only when the message carries attachments. */
    text: z.string().max(MAX_TEXT),
    sentAt: z.number(),
    /** The conversation as the sender sees it (its peer): lets the sender's own other devices file the copy. */
    to: id.optional(),
    reply: replySchema.optional(),
    attachments: z.array(attachmentSchema).min(1).max(MAX_ATTACHMENTS).optional(),
    /** The conversation's disappearing timer (seconds) when it was sent; recipients delete their copy after it. */
    expire: z.number().int().positive().max(604_800).optional(),
    /** Key transparency gossip (issue #16): the newest relay checkpoint the sender verified (a signed note). */
    kt: z.string().max(8192).optional(),
    /** A copy sent again to a device the relay first refused (`resentCopySchema`): filed under this, the first id. */
    orig: messageId.optional(),
  })
  .refine((p) => p.text.length > 0 || (p.attachments?.length ?? 0) > 0, 'a message needs text or an attachment');
export type ChatPayload = z.infer<typeof chatPayloadSchema>;

/**
 * Actions on a conversation (issue #15), sent like a message — end-to-end encrypted, through the outbox, to the
 * peer's devices and our own other devices (pairwise) or to the group (sender key) — but never shown as one.
 * `target` is the id of the message acted on. An edit or a delete is taken only from the target's author; a
 * reaction from anyone in the conversation; a timer from either side (admins in groups). `to`: as in a chat payload.
 */
export const actionPayloadSchema = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(1),
    type: z.literal('react'),
    target: messageId,
    emoji: emojiSchema,
    /** Takes the sender's reaction back instead. */
    remove: z.literal(true).optional(),
    to: id.optional(),
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('edit'),
    target: messageId,
    text: z.string().min(1).max(MAX_TEXT),
    to: id.optional(),
  }),
  z.object({ v: z.literal(1), type: z.literal('delete'), target: messageId, to: id.optional() }),
  z.object({
    v: z.literal(1),
    type: z.literal('timer'),
    seconds: z.union(DISAPPEARING_TIMERS.map((t) => z.literal(t)) as [z.ZodLiteral<0>, ...z.ZodLiteral<number>[]]),
    to: id.optional(),
  }),
]);
export type ActionPayload = z.infer<typeof actionPayloadSchema>;

/**
 * The mark of a copy sent again (a chat message or an action, one-to-one or in a group, where it goes pairwise instead
 * of under the sender key): the relay refused the first send for this device,
 * because its mailbox was full, and stored it for the others. `orig` is the first send's id: the copy is filed under
 * it and marks it handled, and a copy whose first send was already handled here is dropped, so that a relay which
 * lies "refused" cannot make a message show twice.
 */
export const resentCopySchema = z.object({
  orig: messageId,
  /** A copy of a group message, sent pairwise: taken only from a current member of that group. */
  group: id.optional(),
});

export const controlPayloadSchema = z.discriminatedUnion('type', [
  z.object({ v: z.literal(1), type: z.literal('typing') }),
  z.object({
    v: z.literal(1),
    type: z.literal('receipt'),
    status: z.enum(['delivered', 'read']),
    ids: z.array(messageId).min(1).max(500),
    /**
     * Sent pairwise to a message's author: the group the ids are in (group receipts go to the author alone, not to
     * every member). Taken only from a current member of that group.
     */
    group: id.optional(),
  }),
  /** "I could not decrypt these; please send them again." */
  z.object({ v: z.literal(1), type: z.literal('resend'), ids: z.array(messageId).min(1).max(50) }),
  /** Own devices only: "I read these in `conv`" — the other devices clear their unread count for them. */
  z.object({ v: z.literal(1), type: z.literal('read'), conv: id, ids: z.array(messageId).min(1).max(500) }),
  /** "My profile key" (profiles): taken only when `userId` is the session's own user (see profiles.ts). */
  z.object({ v: z.literal(1), type: z.literal('profile-key'), userId: id, key: z.string().length(43) }),
]);
export type ControlPayload = z.infer<typeof controlPayloadSchema>;

export const outboxEntrySchema = z.object({
  /** The sealed envelopes, made once and resent byte for byte; null until encryption succeeded. */
  envelopes: z.array(z.object({ to: id, body: z.custom<Uint8Array>((v) => v instanceof Uint8Array) })).nullable(),
  /** A group message: the one sender-key ciphertext, made once and resent byte for byte. */
  groupBody: z.custom<Uint8Array>((v) => v instanceof Uint8Array).optional(),
  /** A stored control for our own other devices (read state): sent to them alone, nothing in history. */
  control: z.lazy(() => controlPayloadSchema).optional(),
  /** An action (react, edit, delete, timer) for the conversation: sent like a message, nothing of its own in history. */
  action: z.lazy(() => actionPayloadSchema).optional(),
  /** A re-send: the id the peer asked for again (its text is that message's; see the send log). */
  resendOf: messageId.optional(),
  /** Only these devices of the peer get it (a re-send goes to the asking device alone, never to our own). */
  onlyDevices: z.array(id).min(1).max(16).optional(),
  /** Which of the envelopes' devices are our own other devices (a refused copy for one goes again as our own). */
  ownDevices: z.array(id).max(256).optional(),
  /**
   * A copy for one device the relay refused (its mailbox was full) while it stored the send for the others: sent
   * again to that device alone, under a new id and naming the first (`orig`), with a backoff, until `until`.
   */
  refused: z
    .object({
      original: messageId,
      device: id,
      /** Who the device belongs to: the peer, a member of the group, or we (one of our own other devices). */
      user: id,
      /** Its identity key when the first send went out (not ours): a copy never goes to a key the first did not. */
      identityKey: z.string().min(1).max(128).optional(),
      tries: z.number().int().nonnegative(),
      notBefore: z.number(),
      until: z.number(),
    })
    .optional(),
});
export type OutboxEntry = z.infer<typeof outboxEntrySchema>;

/**
 * sendlog record (sealed; the row holds the id and time in clear): a one-to-one message as it was first encrypted —
 * the conversation, and each peer device with the identity key the peer had then (base64url).
 */
export const sendLogEntrySchema = z.object({
  conv: id,
  /** For a re-send: the message whose text it repeated. */
  original: messageId.optional(),
  devices: z.array(z.object({ deviceId: id, identityKey: z.string().min(1).max(128) })).max(256),
});
export type SendLogEntry = z.infer<typeof sendLogEntrySchema>;

// Relay answers are parsed with the wire contract's schemas (`@weconnect/relay/protocol`), defined once for both
// sides; the engine imports them from there.
