// One repetition of one variant, in a process of its own so that no JIT
// state, heap or leftover handle of an earlier repetition colours it.
//   node dist/bench/child.js TRIAL VARIANT [--quick]
// Prints the Measurement as one JSON line on stdout.
import { findTrial } from './trials';

// Turn signals into a normal exit so the test bed's exit handler removes the
// namespaces it made.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

async function main(): Promise<void> {
  const [trialName, variant, ...flags] = process.argv.slice(2);
  if (trialName === undefined || variant === undefined) throw new Error('usage: child TRIAL VARIANT [--quick]');
  const m = await findTrial(trialName).run(variant, { quick: flags.includes('--quick') });
  // A number a variant cannot have (no router CPU for kernel NAT) is left out, not written as null.
  if (m.metrics) m.metrics = Object.fromEntries(Object.entries(m.metrics).filter(([, x]) => Number.isFinite(x)));
  process.stdout.write(`${JSON.stringify(m)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
