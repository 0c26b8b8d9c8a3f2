/** Waits for every promise; the first failure, if any, is thrown after all settled (none is left running unseen). */
export async function settleAll(promises: readonly Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}
