"""Scale-out: serving on Ray Serve (replicas, autoscaling) and offline batch scoring of large candidate
sets (one process, a rerankd server, or Ray Data).

Ray is an optional extra (`pip install rerankd[ray]`): nothing here imports it at module level, and the
single-process batch path (`rerankd.scaleout.batch`) never imports it at all.
"""
