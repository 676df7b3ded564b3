/** Every differential scenario, in the order the test runs them. */
import type { OracleScenario } from '../scenario.js';
import { l2Rewrite, snatCt, vxlanEncap } from './examples.js';

export const scenarios: OracleScenario[] = [l2Rewrite, vxlanEncap, snatCt];
