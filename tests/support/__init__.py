"""What many tests share: polling (:mod:`tests.support.wait`) and a private RabbitMQ node
for tests that stop the broker (:mod:`tests.support.rabbitmq_node`)."""
