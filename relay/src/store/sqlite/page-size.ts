// Which page sizes SQLite takes. Its own module, with no imports, so that the configuration can check
// SQLITE_PAGE_SIZE without loading the SQLite store (and its native driver).

/** Whether SQLite takes `n` as a page size: a power of two from 512 to 65,536. */
export function isPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
}
