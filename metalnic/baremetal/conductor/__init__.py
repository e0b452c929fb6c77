"""The conductor: moves nodes through the provisioning state machine."""
