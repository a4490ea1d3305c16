"""Protobuf contracts of Vigie's Kafka topics, generated from proto/ by ``make proto``."""
