import { JobRegistry } from '../../src/core/index.js';
import { registryContract } from '../helpers/contract.js';

registryContract('memory', async (options) => {
  const registry = new JobRegistry<string>(options);
  return { a: registry, b: registry, close: () => registry.dispose() };
});
