"""Operations: health probes, Prometheus metrics and structured logs (what a load balancer, Prometheus and a log
store read)."""
