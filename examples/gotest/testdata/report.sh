#!/bin/sh
# report.sh CSV: sums the amount column of a region,amount CSV per region,
# writes report.txt, and prints the total as a Kestra-style output.
# Exits 2 when the file is missing, 3 when an amount is not a number.
set -eu
csv=${1:?usage: report.sh CSV}
[ -f "$csv" ] || { echo "report: no such file: $csv" >&2; exit 2; }
total=0
: > report.txt
tail -n +2 "$csv" | while IFS=, read -r region amount; do
	case $amount in
	'' | *[!0-9]*) echo "report: not a number: $amount" >&2; exit 3 ;;
	esac
done
for region in $(tail -n +2 "$csv" | cut -d, -f1 | sort -u); do
	sum=$(grep "^$region," "$csv" | cut -d, -f2 | paste -sd+ | bc)
	echo "$region $sum" >> report.txt
	total=$((total + sum))
done
echo "total $total"
echo "::{\"outputs\":{\"total\":$total,\"user\":\"$(id -u)\"}}::"
