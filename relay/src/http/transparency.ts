// The key transparency routes (issue #16): the latest signed checkpoint and consistency proofs for anyone (an
// auditor needs no account), an account's latest entry with its inclusion proof and one's own entries for
// signed-in users.
import { Router } from 'express';
import { RelayError } from '../errors.js';
import {
  ktAccountParams,
  ktAccountQuery,
  ktConsistencyQuery,
  ktCosignaturesSchema,
  ktEntriesQuery,
  ktReleaseParams,
  type KtAccountAnswer,
  type KtCheckpointAnswer,
  type KtConsistencyAnswer,
  type KtCosignaturesAnswer,
  type KtEntriesAnswer,
  type KtReleaseAnswer,
} from '../protocol.js';
import type { AccountService } from '../service/accounts.js';
import { toBase64url } from '../service/keys.js';
import {
  KT_ENTRIES_PAGE,
  KT_UNWITNESSED_RETRY_SECONDS,
  type KeyTransparency,
  type SignedCheckpoint,
} from '../service/transparency.js';
import type { Bytes, KtLeafRecord } from '../store/store.js';
import { parseInput } from '../validation.js';
import { authOf, requireAuth } from './middleware.js';

const leafOf = (l: { leaf: KtLeafRecord; proof: Bytes[] }) => ({
  index: l.leaf.index,
  entry: toBase64url(l.leaf.entry),
  proof: l.proof.map(toBase64url),
});

/** `?witnessed=`: the newest checkpoint those witnesses cosigned; 503 kt_unwitnessed when there is none. */
async function witnessedCheckpoint(kt: KeyTransparency, witnessed: string): Promise<SignedCheckpoint> {
  const checkpoint = await kt.witnessedCheckpoint(witnessed.split(','));
  if (!checkpoint) throw unwitnessed();
  return checkpoint;
}

const unwitnessed = (): RelayError =>
  new RelayError('kt_unwitnessed', "the log's newest entries are not cosigned by its witnesses yet", {
    retryAfterSeconds: KT_UNWITNESSED_RETRY_SECONDS,
  });

export function transparencyRoutes(accounts: AccountService, kt: KeyTransparency): Router {
  const router = Router();
  router.get('/kt/checkpoint', async (_req, res) => {
    const answer: KtCheckpointAnswer = { checkpoint: (await kt.servedCheckpoint()).note, verifierKey: kt.verifierKey };
    res.json(answer);
  });
  router.get('/kt/consistency', async (req, res) => {
    const { from, to } = parseInput(ktConsistencyQuery, { ...req.query }, 'query');
    const { size } = await kt.checkpoint();
    if (from > to || to > size) throw new RelayError('invalid_input', `query: need from ≤ to ≤ ${size}`);
    const answer: KtConsistencyAnswer = { proof: (await kt.consistency(from, to)).map(toBase64url) };
    res.json(answer);
  });
  // A witness's cosignature (no sign-in: the witness key is the credential; see "Witness cosignatures").
  router.post('/kt/cosignatures', async (req, res) => {
    const { checkpoint } = parseInput(ktCosignaturesSchema, req.body, 'body');
    await kt.addCosignatures(checkpoint);
    const answer: KtCosignaturesAnswer = { checkpoint: (await kt.servedCheckpoint()).note };
    res.json(answer);
  });
  router.get('/kt/releases/:sha256', async (req, res) => {
    const { sha256 } = parseInput(ktReleaseParams, { ...req.params }, 'path');
    const checkpoint = await kt.servedCheckpoint();
    const found = await kt.releaseOf(sha256, checkpoint.size);
    if (!found) throw new RelayError('not_found', 'no logged release manifest with this hash');
    const answer: KtReleaseAnswer = { checkpoint: checkpoint.note, leaf: leafOf(found) };
    res.json(answer);
  });
  router.get('/kt/accounts/:userId', requireAuth(accounts), async (req, res) => {
    const { userId } = parseInput(ktAccountParams, { ...req.params }, 'path');
    const { witnessed } = parseInput(ktAccountQuery, { ...req.query }, 'query');
    let checkpoint = await kt.servedCheckpoint();
    let found = await kt.latestOf(userId, checkpoint.size);
    if (!found && (await kt.backfill(userId))) {
      checkpoint = await kt.servedCheckpoint();
      found = await kt.latestOf(userId, checkpoint.size);
    }
    if (!found) throw new RelayError('not_found', 'no logged entry for this account');
    if (witnessed !== undefined) {
      // Only a witnessed checkpoint that holds the account's latest entry (any stored one, even mid-append) answers.
      checkpoint = await witnessedCheckpoint(kt, witnessed);
      const latest = await kt.latestIndexOf(userId);
      if (latest === null || latest >= checkpoint.size) throw unwitnessed();
      found = await kt.latestOf(userId, checkpoint.size);
      if (!found) throw unwitnessed();
    }
    const answer: KtAccountAnswer = { checkpoint: checkpoint.note, leaf: leafOf(found) };
    res.json(answer);
  });
  router.get('/kt/self/entries', requireAuth(accounts), async (req, res) => {
    const { since, witnessed } = parseInput(ktEntriesQuery, { ...req.query }, 'query');
    await kt.backfill(authOf(res).userId);
    const checkpoint = witnessed === undefined ? await kt.servedCheckpoint() : await witnessedCheckpoint(kt, witnessed);
    const entries = await kt.entriesOf(authOf(res).userId, since, checkpoint.size);
    const answer: KtEntriesAnswer = {
      checkpoint: checkpoint.note,
      entries: entries.map(leafOf),
      more: entries.length === KT_ENTRIES_PAGE,
    };
    res.json(answer);
  });
  return router;
}
