#!/bin/bash
# What a node sees of the fabric, for whoever reads a failed failover test: its route to and a ping of every node
# address, routes to them, neighbours, links with their counters, the sysctls and counters that drop forwarded
# packets (reverse-path filter, no route), and any drop rule.
# Usage: fabric-diag.sh THIS_NODE_ADDRESS NODE_ADDRESS...
set -u
me=$1
shift
echo "node address $me"
for d in "$@"; do
  ip route get "$d" from "$me" 2>&1 | head -1
  ping -n -q -c 2 -i 0.2 -W 1 -I "$me" "$d" | grep -E 'transmitted'
done
for d in "$@"; do ip route show "$d"; done
ip neigh show
ip -br link | grep -v '^lo'
sysctl net.ipv4.conf.all.ignore_routes_with_linkdown net.ipv4.ip_forward net.ipv4.conf.all.rp_filter
for p in /proc/sys/net/ipv4/conf/*/rp_filter; do
  case $p in */lo/*|*/all/*|*/default/*) ;; *) echo "$p=$(cat "$p")" ;; esac
done
nstat -az IpForwDatagrams IpInAddrErrors IpOutNoRoutes IpExtInNoRoutes IpInDiscards TcpExtIPReversePathFilter \
  IcmpInEchos IcmpOutEchoReps IcmpInEchoReps IcmpOutEchos IcmpOutRedirects IcmpInRedirects IcmpInDestUnreachs \
  | tail -n +2
ip -s -o link | grep -v ': lo:' | sed -E 's/ +/ /g' | cut -c1-400
nft list ruleset 2>/dev/null | grep -E 'drop|reject|policy'
iptables -S FORWARD 2>/dev/null | head -5
exit 0
