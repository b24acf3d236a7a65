"""The analyses: matching, geometry, topology, interpretation, steering and projection maths.

Each imports only ``core``, ``sources`` and ``extraction``; none imports another's plots.
"""
