//! The RabbitMQ path (cargo feature `amqp`): placeholder, filled in below.
