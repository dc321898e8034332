// How long a message's text may be, in the bytes it takes inside the encrypted payload, so that everything the
// composer accepts is also accepted by the crypto library and by every recipient's payload schema.

/**
 * The crypto library's largest content body (`MAX_CONTENT_BYTES` in @weconnect/crypto: 32 KiB padded plaintext minus
 * the kind byte, a group message id and one padding byte). Written out here so the UI does not load libsodium to know
 * it; a test checks the two are equal.
 */
export const CRYPTO_MAX_CONTENT_BYTES = 32_750;

const encoder = new TextEncoder();

/**
 * The bytes `text` takes inside a JSON payload: UTF-8 of its JSON string form without the quotes. For ordinary text
 * this is its UTF-8 length; a quote, backslash, newline or control character counts as its escape (2 to 6 bytes).
 */
export function encodedTextBytes(text: string): number {
  return encoder.encode(JSON.stringify(text)).length - 2;
}

/**
 * The most bytes (as `encodedTextBytes` counts them) of the key transparency checkpoint a chat payload carries as
 * gossip (issue #16): a signed note is a few hundred bytes; a longer one is left out rather than crowd the text.
 */
export const KT_GOSSIP_MAX_BYTES = 1024;

/**
 * The largest payload around a text: a chat message with every optional field at its longest (the conversation for
 * our own devices, a 13-digit send time, the longest disappearing timer, a quote of 200 characters that each
 * escape to 6 bytes, and the longest checkpoint gossip). An edit (`{v, type, target, text, to}`) is smaller. Attachments are not counted here: a message
 * with attachments must check its whole payload (see `payloadFits`).
 */
export const WORST_PAYLOAD_WITHOUT_TEXT = {
  v: 1,
  text: '',
  sentAt: 9_999_999_999_999,
  to: 'A'.repeat(22),
  reply: { id: 'A'.repeat(22), author: 'A'.repeat(22), text: '\u0000'.repeat(200) },
  expire: 604_800,
  kt: 'A'.repeat(KT_GOSSIP_MAX_BYTES),
};

/**
 * The longest text (in `encodedTextBytes`) that is always accepted: the composer refuses one byte more, and every
 * chat or edit payload carrying it fits the crypto library's content limit.
 */
export const MAX_TEXT_BYTES =
  CRYPTO_MAX_CONTENT_BYTES - encoder.encode(JSON.stringify(WORST_PAYLOAD_WITHOUT_TEXT)).length;

/** True when a payload, encoded as JSON, fits one encrypted message. */
export function payloadFits(payload: unknown): boolean {
  return encoder.encode(JSON.stringify(payload)).length <= CRYPTO_MAX_CONTENT_BYTES;
}
