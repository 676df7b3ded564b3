/**
 * The built-in topology `devstack-dvr`: the seed's three-node devstack (Ocata, OVS 2.5, DVR)
 * of reference §4, with every value the seed shows. A value the seed does not show is chosen
 * once and marked "not in the seed: chosen" next to it. `dvrlab compile devstack-dvr` (and any
 * command taking a scenario) accepts the name in place of a file.
 */

/** The name that selects the built-in topology. */
export const DEVSTACK_DVR = 'devstack-dvr';

/** The topology, as YAML text (so that messages can point at its lines). */
export const DEVSTACK_DVR_YAML = `# The seed devstack of the Neutron DVR reference (§4).
# node1 is the network node (dvr_snat, with one VM); node2 and node3 are compute nodes
# (dvr). router1 is distributed, with its SNAT on node1 and one floating IP (172.24.4.12)
# for test02 on node2.
# Ports are bound in ofport order, which fixes the local VLANs and the gateway MAC br-int
# table 1 writes for dual-stack ports (reference §6.1 and §6.11).
nodes:
  - name: node1
    agent_mode: dvr_snat
    tunnel_ip: 192.168.1.11
    underlay_mac: 08:00:27:a6:c6:02
    dvr_mac: fa:16:3f:1c:8e:47        # D1: not in the seed: chosen
    uplink: {name: enp0s9, ofport: 1} # not in the seed: chosen (the public NIC)
    ofports:
      patch-tun: 2
      sg-adafc8f8-1e: 5
      # Not in the seed: chosen, in a bind order that keeps private = 1 and public = 2.
      int-br-ex: 1
      tapc8a2d4e6-0b: 3               # DHCP port of private
      qr-aae8ab78-22: 4
      qr-12fa6289-8f: 6
      sg-39996102-8b: 7
      qg-242f9c7b-c1: 8
      tapd7e9f1a3-5c: 9               # DHCP port of private2
      qr-2909fe1f-46: 10
      sg-bb562f9c-59: 11
      # br-tun and br-ex.
      patch-int: 1
      vxlan-c0a8010c: 2
      vxlan-c0a8010d: 3               # not in the seed: chosen (the next free ofport)
      phy-br-ex: 2
    local_vlans:
      private: 1
      public: 2
      private2: 3                     # not in the seed: chosen
  - name: node2
    agent_mode: dvr
    tunnel_ip: 192.168.1.12
    underlay_mac: 08:00:27:8b:a7:13
    dvr_mac: fa:16:3f:73:c3:04        # D2
    uplink: {name: enp0s9, ofport: 1} # not in the seed: chosen
    ofports:
      int-br-ex: 1
      patch-tun: 2
      qr-12fa6289-8f: 4
      qr-2909fe1f-46: 5
      qr-aae8ab78-22: 6
      fg-07ec92fd-de: 8               # not in the seed: chosen (plugged after the FIP)
      patch-int: 1
      vxlan-c0a8010b: 2
      vxlan-c0a8010d: 3
      phy-br-ex: 2
    local_vlans:
      private: 1
      private2: 2
      public: 3                       # Lp2: not in the seed: chosen (exists after the FIP)
    fip_gateway:
      port_id: 07ec92fd-de
      ip: 172.24.4.5                  # not in the seed: chosen
      mac: fa:16:3e:0f:6b:2e          # not in the seed: chosen
  - name: node3
    agent_mode: dvr
    tunnel_ip: 192.168.1.13
    underlay_mac: 08:00:27:aa:d4:28
    dvr_mac: fa:16:3f:59:35:b1        # D3
    uplink: {name: enp0s9, ofport: 1} # not in the seed: chosen
    ofports:
      int-br-ex: 1
      patch-tun: 2
      qr-12fa6289-8f: 4
      qr-2909fe1f-46: 5
      qr-aae8ab78-22: 6
      patch-int: 1
      vxlan-c0a8010c: 2
      vxlan-c0a8010b: 3
      phy-br-ex: 2                    # not in the seed: chosen (as on node1 and node2)
    local_vlans:
      private2: 1                     # test04 booted first
      private: 2

networks:
  - name: private
    vni: 66
    subnets:
      - {name: private-subnet, cidr: 10.0.0.0/26, gateway_ip: 10.0.0.1}
      - {name: ipv6-private-subnet, cidr: "fda0:6cec:a994::/64", gateway_ip: "fda0:6cec:a994::1"}
  - name: private2
    vni: 5
    subnets:
      - {name: private2-subnet, cidr: 10.1.0.0/24, gateway_ip: 10.1.0.1} # name: chosen
  - name: public
    id: 6f83ddde-6be3-40d3-a1ec-f5241e7aca3d
    external: true
    subnets:
      - {name: public-subnet, cidr: 172.24.4.0/24, gateway_ip: 172.24.4.1}

routers:
  - name: router1
    id: bd7982cb-bb78-4cc6-b3f0-f8a828947718
    distributed: true
    snat_node: node1
    gateway: {network: public, ip: 172.24.4.3, mac: "fa:16:3e:af:c7:ce", port_id: 242f9c7b-c1}
    interfaces:
      - subnet: private-subnet
        ip: 10.0.0.1
        mac: fa:16:3e:9c:cf:de          # GW1
        port_id: aae8ab78-22
        snat: {ip: 10.0.0.3, mac: "fa:16:3e:47:34:80", port_id: adafc8f8-1e} # SG1
      - subnet: ipv6-private-subnet
        ip: "fda0:6cec:a994::1"
        mac: fa:16:3e:5e:30:73          # GW6
        port_id: 12fa6289-8f
        snat: {ip: "fda0:6cec:a994::5", mac: "fa:16:3e:69:37:93", port_id: 39996102-8b}
      - subnet: private2-subnet
        ip: 10.1.0.1
        mac: fa:16:3e:5c:3d:f9          # GW2
        port_id: 2909fe1f-46
        snat: {ip: 10.1.0.6, mac: "fa:16:3e:a9:a2:19", port_id: bb562f9c-59} # SG2
    fip_links:
      node2:
        rfp: 169.254.106.114/31
        rfp_mac: 4a:7e:91:c2:05:d3      # not in the seed: chosen
        fpr_mac: 1e:3b:62:f0:a8:17      # not in the seed: chosen

vms:
  - name: test01
    node: node1
    network: private
    ip: 10.0.0.7
    mac: fa:16:3e:5a:6e:54
    port_id: 1f5b1c3a-9e              # not in the seed: chosen
    ofport: 12                        # not in the seed: chosen
  - {name: test02, node: node2, network: private, ip: 10.0.0.8, mac: "fa:16:3e:76:47:75",
     port_id: 28e6e267-f3, ofport: 3}
  - name: test03
    node: node2
    network: private2
    ip: 10.1.0.12
    mac: fa:16:3e:3b:8a:d1            # not in the seed: chosen
    port_id: 06557f2b-83
    ofport: 7
  - {name: test04, node: node3, network: private2, ip: 10.1.0.10, mac: "fa:16:3e:23:c5:28",
     port_id: 62806dde-b9, ofport: 3}
  - {name: test05, node: node3, network: private, ip: 10.0.0.4, mac: "fa:16:3e:96:e2:a4",
     port_id: 4a577779-93, ofport: 7}

# The two DHCP ports on node1: not in the seed: chosen.
dhcp_ports:
  - {network: private, node: node1, ips: [10.0.0.2], mac: "fa:16:3e:e4:0a:13",
     port_id: c8a2d4e6-0b}
  - {network: private2, node: node1, ips: [10.1.0.2], mac: "fa:16:3e:72:c5:9f",
     port_id: d7e9f1a3-5c}

floating_ips:
  - ip: 172.24.4.12
    vm: test02
    rule_priority: 32768              # not in the seed: chosen (the first of the pool)
`;
