# A site rule: no version change while the StatefulSet is frozen.
package pdguard.validate

import data.pdguard.lib

violation contains {"rule": "change-freeze", "message": msg} if {
	input.change.version_changed == true
	lib.is_update
	input.new.annotations["example.com/freeze"] == "true"
	msg := sprintf("%s is frozen (example.com/freeze): no version change until it is lifted", [lib.object_name])
}
