"""A faithful Asterisk 22 simulator (ARI, AMI, FastAGI, phones, trunks) for tests and the demo.

It imports nothing from the service packages: it stands in for the PBX on the other side of the wire.
Start with :class:`asterisk_sim.simulator.Simulator` (in-process) or the ``callcenter-sim`` command.
"""

from asterisk_sim.simulator import SimConfig, Simulator

__all__ = ["SimConfig", "Simulator"]
