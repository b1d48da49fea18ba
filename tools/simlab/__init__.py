"""The simulated lab: systemd nodes in containers, cabled with veth pairs named like the real ports.

Cabling comes from the collection's own fabric planner (profile ``sim``), so the lab is wired exactly the way the
fabric role will expect the real boxes to be: port 1 of node i to port 0 of node i+1, both ConnectX-7 halves.
"""
