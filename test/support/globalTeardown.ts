import type { Emulator } from '../../scripts/emulators';

export default async function globalTeardown(): Promise<void> {
  const emulators = (globalThis as unknown as { __emulators?: Emulator[] }).__emulators ?? [];
  await Promise.all(emulators.map((e) => e.stop()));
}
