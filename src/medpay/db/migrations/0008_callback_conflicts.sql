-- Why a provincial callback was kept as a conflict (its figures are not the payment's, or
-- it contradicts the payment's final state), so reconciliation can show it to a person.
ALTER TABLE province_callbacks ADD COLUMN detail text;
