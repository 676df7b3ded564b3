#!/usr/bin/env bash
# TCP throughput through the emulated DVR path, and through the kernel as its ceiling, in the
# same run (root; iperf3 and iproute2). Writes bench/live.md, which `npm run bench` includes
# in bench/RESULTS.md.
#
# 1. dvrlab: `dvrlab lab up devstack-dvr`, iperf3 from test02 (node2, 10.0.0.8) to test04
#    (node3, 10.1.0.10): br-int, the qrouter, br-tun, VXLAN to node3, br-tun, br-int.
# 2. Kernel: two namespaces, each a veth into a Linux bridge with a kernel VXLAN device,
#    the two VTEPs joined by a veth underlay; the same MTU (1450 inside) and duration.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
CLI="node dist/src/cli.js"

cleanup() {
  for ns in kv-a kv-b kv-ha kv-hb; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -n "${LAB_PID:-}" ] && kill -0 "$LAB_PID" 2>/dev/null; then
    kill -TERM "$LAB_PID"
    wait "$LAB_PID" || true
  fi
  $CLI lab down devstack-dvr >/dev/null 2>&1 || true
}
trap cleanup EXIT

gbps() { # iperf3 JSON on stdin -> received Gbit/s
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);
    process.stdout.write((j.end.sum_received.bits_per_second/1e9).toFixed(2))})'
}

# 1. dvrlab: all nodes in one process, then one process per node over real UDP.
lab_iperf() { # extra lab up arguments -> Gbit/s test02 -> test04
  $CLI lab up devstack-dvr "$@" >/tmp/dvrlab-lab-iperf.log 2>&1 &
  LAB_PID=$!
  for _ in $(seq 100); do grep -q '^ready$' /tmp/dvrlab-lab-iperf.log && break; sleep 0.2; done
  grep -q '^ready$' /tmp/dvrlab-lab-iperf.log || { cat /tmp/dvrlab-lab-iperf.log >&2; exit 1; }
  ip netns exec test04 iperf3 -s -1 -D
  sleep 0.5
  ip netns exec test02 iperf3 -c 10.1.0.10 -t "$SECONDS_PER_RUN" -J | gbps
  kill -TERM "$LAB_PID"
  wait "$LAB_PID" || true
  LAB_PID=""
}
DVR=$(lab_iperf)
DVR_PROCS=$(lab_iperf --processes)

# 2. The kernel: veth + bridge + VXLAN on both sides, a veth underlay between the VTEPs.
for ns in kv-a kv-b kv-ha kv-hb; do ip netns add "$ns"; done
ip link add u-a type veth peer name u-b
ip link set u-a netns kv-ha
ip link set u-b netns kv-hb
ip -n kv-ha addr add 192.168.77.1/24 dev u-a
ip -n kv-hb addr add 192.168.77.2/24 dev u-b
for side in a b; do
  h=kv-h$side
  other=$([ $side = a ] && echo 192.168.77.2 || echo 192.168.77.1)
  local=$([ $side = a ] && echo 192.168.77.1 || echo 192.168.77.2)
  ip -n $h link set lo up
  ip -n $h link set u-$side up
  ip -n $h link add vx type vxlan id 66 local "$local" remote "$other" dstport 4789
  ip -n $h link add kbr type bridge
  ip link add v-$side type veth peer name p-$side
  ip link set v-$side netns kv-$side
  ip link set p-$side netns $h
  ip -n $h link set vx master kbr up
  ip -n $h link set p-$side master kbr up
  ip -n $h link set kbr up
  ip -n kv-$side link set v-$side mtu 1450 up
  ip -n kv-$side link set lo up
done
ip -n kv-a addr add 10.9.9.1/24 dev v-a
ip -n kv-b addr add 10.9.9.2/24 dev v-b
ip netns exec kv-b iperf3 -s -1 -D
sleep 0.5
KERNEL=$(ip netns exec kv-a iperf3 -c 10.9.9.2 -t "$SECONDS_PER_RUN" -J | gbps)

cat >bench/live.md <<EOF
## Live TCP throughput (\`bench/lab-iperf.sh\`, iperf3, ${SECONDS_PER_RUN} s, one stream)

| path | Gbit/s |
| --- | ---: |
| dvrlab \`lab up devstack-dvr\`: test02 (node2) -> test04 (node3), routed by DVR, VXLAN between the nodes, TAP at both ends | ${DVR} |
| the same, one process per node (\`--processes\`): the VXLAN crosses loopback as real UDP | ${DVR_PROCS} |
| Linux: veth + bridge + kernel VXLAN on each side, veth underlay (the ceiling) | ${KERNEL} |

The TAP devices carry no offloads (no TSO/GRO through dvrlab), so every 1450-byte segment
crosses the datapath; the kernel path keeps its segmentation offloads.
EOF
cat bench/live.md
