// Parsing untrusted input with the protocol schemas: failures become `invalid_input` with a short, value-free message.
import type { z } from 'zod';
import { RelayError } from './errors.js';

const MAX_MESSAGE = 200;

/** Parses `value` (untrusted) with `schema`; throws RelayError('invalid_input') naming the first problem. */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = [what, ...(issue?.path ?? [])].map(String).join('.');
  const message = `${path}: ${issue?.message ?? 'invalid'}`;
  throw new RelayError('invalid_input', message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message);
}
