// Block documents of the MongoDB store (see Store.putBlock). Each write is one single-document write.
import type { Models } from './models.js';

const keyOf = (blocker: string, blocked: string): string => `${blocker}:${blocked}`;

export class MongoBlocks {
  constructor(private readonly m: Models) {}

  /**
   * The count and the insert are two steps (no transactions here): concurrent blocks by one user on several nodes
   * can pass `max` by the number of racing requests, as the group cap can.
   */
  async put(blocker: string, blocked: string, now: number, max: number): Promise<'stored' | 'limit'> {
    const _id = keyOf(blocker, blocked);
    if (await this.m.blocks.exists({ _id })) return 'stored';
    if ((await this.m.blocks.countDocuments({ blocker })) >= max) return 'limit';
    await this.m.blocks.updateOne({ _id }, { $setOnInsert: { blocker, blocked, createdAt: now } }, { upsert: true });
    return 'stored';
  }

  async delete(blocker: string, blocked: string): Promise<void> {
    await this.m.blocks.deleteOne({ _id: keyOf(blocker, blocked) });
  }

  async list(blocker: string): Promise<{ userId: string; username: string }[]> {
    const docs = await this.m.blocks.find({ blocker }, { blocked: 1, createdAt: 1 }).sort({ createdAt: 1 }).lean();
    if (docs.length === 0) return [];
    const users = await this.m.users.find({ _id: { $in: docs.map((d) => d.blocked) } }, { username: 1 }).lean();
    const names = new Map(users.map((u) => [u._id, u.username]));
    return docs.flatMap((d) => {
      const username = names.get(d.blocked);
      return username === undefined ? [] : [{ userId: d.blocked, username }];
    });
  }

  async usersBlocking(blocked: string, userIds: string[]): Promise<string[]> {
    const ids = [...new Set(userIds)].map((u) => keyOf(u, blocked));
    if (ids.length === 0) return [];
    return (await this.m.blocks.find({ _id: { $in: ids } }, { blocker: 1 }).lean()).map((d) => d.blocker);
  }

  /** One indexed read when nobody blocks the sender (the common case); a second only when someone does. */
  async devicesBlocking(sender: string, deviceIds: string[]): Promise<string[]> {
    if (deviceIds.length === 0) return [];
    const blockers = (await this.m.blocks.find({ blocked: sender }, { blocker: 1 }).lean()).map((d) => d.blocker);
    if (blockers.length === 0) return [];
    const devices = await this.m.devices
      .find({ _id: { $in: [...new Set(deviceIds)] }, userId: { $in: blockers } }, { _id: 1 })
      .lean();
    return devices.map((d) => d._id);
  }

  async blockedUsers(): Promise<string[]> {
    return (await this.m.blocks.distinct('blocked')) as string[];
  }

  /** Every block by or of a deleted user. */
  async forgetUser(userId: string): Promise<void> {
    await this.m.blocks.deleteMany({ $or: [{ blocker: userId }, { blocked: userId }] });
  }
}
