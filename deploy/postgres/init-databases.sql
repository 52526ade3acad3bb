-- Run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d): one database per service, owned by the
-- application role POSTGRES_USER ("warren"). Each service applies its own schema
-- migrations at start.
CREATE DATABASE warren_customer;
CREATE DATABASE warren_order;
