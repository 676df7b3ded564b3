/** Every differential scenario, in the order the test runs them. */
import type { OracleScenario } from '../scenario.js';
import { l2Rewrite, snatCt, vxlanEncap } from './examples.js';
import { scenario as l2Match } from './l2-match/inputs.js';
import { scenario as vlanOps } from './vlan-ops/inputs.js';
import { scenario as normalVlan } from './normal-vlan/inputs.js';
import { scenario as ipv4Match } from './ipv4-match/inputs.js';
import { scenario as fragMalformed } from './frag-malformed/inputs.js';
import { scenario as rewriteCsum } from './rewrite-csum/inputs.js';
import { scenario as arpIpv6 } from './arp-ipv6/inputs.js';
import { scenario as regsResubmit } from './regs-resubmit/inputs.js';
import { scenario as ctTcp } from './ct-tcp/inputs.js';
import { scenario as patchThree } from './patch-three/inputs.js';
import { scenario as vxlanTunnel } from './vxlan-tunnel/inputs.js';
import { scenario as neutronOnenode } from './neutron-onenode/inputs.js';

export const scenarios: OracleScenario[] = [
  l2Rewrite,
  vxlanEncap,
  snatCt,
  l2Match,
  vlanOps,
  normalVlan,
  ipv4Match,
  fragMalformed,
  rewriteCsum,
  arpIpv6,
  regsResubmit,
  ctTcp,
  patchThree,
  vxlanTunnel,
  neutronOnenode,
];
