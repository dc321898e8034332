// The SQLite writer worker: its own connection to the store's file; runs each write batch in one IMMEDIATE
// transaction, in the order received (seq order = commit order), and posts the outcomes back after COMMIT.
import { parentPort, workerData } from 'node:worker_threads';
import { MailboxStatements } from './mailbox.js';
import { batchTransaction, openConnection, runBatch } from './writer.js';
import type { FromWriter, ToWriter, WriterWorkerData } from './writer-messages.js';

const port = parentPort;
if (!port) throw new Error('writer-worker.ts runs as a worker thread');
const data = workerData as WriterWorkerData;
const db = openConnection(data.file, data.synchronous);
const mailbox = new MailboxStatements(db);
const transaction = batchTransaction(db, mailbox);

const post = (message: FromWriter): void => port.postMessage(message);
/** Set by a test: the next batch ends the thread (the crash tests). */
let exitOnBatch: 'before-commit' | 'after-commit' | null = null;

port.on('message', (message: ToWriter) => {
  switch (message.type) {
    case 'batch':
      try {
        if (exitOnBatch === 'before-commit') process.exit(70);
        const outcomes = runBatch(transaction, mailbox, message.batch, message.now);
        if (exitOnBatch === 'after-commit') process.exit(70);
        post({ type: 'done', id: message.id, outcomes });
      } catch (err) {
        post({ type: 'failed', id: message.id, message: err instanceof Error ? err.message : String(err) });
      }
      break;
    case 'forgetPruned':
      mailbox.sent.forgetPruned();
      break;
    case 'forgetUsage':
      mailbox.forgetUsage();
      break;
    case 'dangerousTestOnlyExit':
      exitOnBatch = message.when;
      break;
    case 'close':
      db.close();
      port.close();
      break;
  }
});
