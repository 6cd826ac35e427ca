-- docker-compose only: the official postgres image creates the user and the `mentorwijzer`
-- database from POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB; this adds Rasa's tracker database.
CREATE DATABASE rasa_tracker OWNER mentorwijzer;
