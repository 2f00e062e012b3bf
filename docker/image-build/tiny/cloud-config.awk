# Reads the #cloud-config subset that boxvirt writes and prints one line per
# fact for /init:  HOSTNAME name | USER name | SHELL name path | KEY name key
# The ssh_keys.ed25519_private block is written to the file named by -v keyout.
function val(s) {
  sub(/^[^:]*:[ \t]*/, "", s)          # drop "key:"
  return unq(s)
}
function unq(s) {
  sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s)
  if (s ~ /^".*"$/ || s ~ /^'.*'$/) s = substr(s, 2, length(s) - 2)
  return s
}
{ sub(/\r$/, "") }
# inside the "ed25519_private: |" block: lines indented deeper than the key
blk {
  if ($0 ~ /^[ \t]*$/) { print "" > keyout; next }
  match($0, /^ */)
  if (bind == 0) bind = RLENGTH
  if (RLENGTH >= bind && RLENGTH > kind) { print substr($0, bind + 1) > keyout; next }
  blk = 0
}
/^[ \t]*#/ || /^[ \t]*$/ { next }
# a top-level key starts a section
/^[A-Za-z_]/ {
  top = $0; sub(/:.*/, "", top); keys = 0
  if (top == "hostname") print "HOSTNAME " val($0)
  next
}
top == "users" && /^ *- *name:/ { sub(/- */, ""); user = val($0); keys = 0; print "USER " user; next }
top == "users" && /^ *- / && !keys { next }        # "- default" and the like
top == "users" && /^ +shell:/ { print "SHELL " user " " val($0); next }
top == "users" && /^ +ssh_authorized_keys:/ { keys = 1; next }
top == "users" && keys && /^ *- / { sub(/^ *- */, ""); print "KEY " user " " unq($0); next }
top == "users" && /^ +[A-Za-z_]+:/ { keys = 0; next }
top == "ssh_authorized_keys" && /^ *- / { sub(/^ *- */, ""); print "KEY root " unq($0); next }
top == "ssh_keys" && /^ +ed25519_private: *\|/ {
  match($0, /^ */); kind = RLENGTH; bind = 0; blk = 1; printf "" > keyout; next
}
