// Small validators for arguments and serialized input: wrong type, length or shape throws bad_input naming it.

import { fromBase64Url } from './bytes.js';
import { CryptoError } from './errors.js';

export const MAX_U32 = 0xffffffff;

export function fail(message: string): never {
  throw new CryptoError('bad_input', message);
}

/** A Uint8Array, of exactly `length` bytes if given. */
export function bytesArg(value: unknown, name: string, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) fail(`${name} must be a Uint8Array`);
  if (length !== undefined && value.length !== length) fail(`${name} must be ${length} bytes (got ${value.length})`);
  return value;
}

/** A Uint8Array, or base64url of one, of exactly `length` bytes. */
export function keyArg(value: unknown, name: string, length: number): Uint8Array {
  if (typeof value === 'string') return fromBase64Url(value, name, length);
  return bytesArg(value, name, length);
}

/** A non-empty string of at most 255 UTF-8 bytes (user, device and group ids). */
export function idArg(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) fail(`${name} must be a non-empty string`);
  if (new TextEncoder().encode(value).length > 255) fail(`${name} must be at most 255 UTF-8 bytes`);
  return value;
}

/** An unsigned 32-bit integer. */
export function u32Arg(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_U32) {
    fail(`${name} must be an integer from 0 to ${MAX_U32}`);
  }
  return value;
}

/** A plain object with exactly the given keys (extra or missing keys are rejected). */
export function objectArg(value: unknown, name: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${name} must be an object`);
  const record = value as Record<string, unknown>;
  for (const k of Object.keys(record)) if (!keys.includes(k)) fail(`${name} has an unexpected field "${k}"`);
  for (const k of keys) if (!(k in record)) fail(`${name}.${k} is missing`);
  return record;
}

/** An array (optionally at most `max` long). */
export function arrayArg(value: unknown, name: string, max?: number): unknown[] {
  if (!Array.isArray(value)) fail(`${name} must be an array`);
  if (max !== undefined && value.length > max) fail(`${name} has more than ${max} entries`);
  return value;
}

export function booleanArg(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') fail(`${name} must be a boolean`);
  return value;
}

/** Checks a serialized `version` field (`expected`, 1 unless a format has moved on). */
export function versionArg<V extends number = 1>(value: unknown, name: string, expected: V = 1 as V): V {
  if (value !== expected) {
    if (typeof value === 'number')
      throw new CryptoError('unsupported_version', `${name}.version ${value} is not supported`);
    fail(`${name}.version must be a number`);
  }
  return expected;
}
