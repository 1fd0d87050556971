-- One database per service that owns data (the gateway owns none).
CREATE DATABASE user_service;
CREATE DATABASE order_service;
CREATE DATABASE inventory_service;
CREATE DATABASE payment_service;
CREATE DATABASE notification_service;
