"""The network layer: rtnetlink (netlink.py), network namespaces (netns.py), IPAM, firewall
and DNS -- the kernel plumbing of container networking, composed by the engine."""
