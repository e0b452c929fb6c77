"""The smart NIC OVS agent: runs on the NIC, talks to the server only over HTTP."""
