package pdguard.validate

violation contains {"rule": "x" if {
